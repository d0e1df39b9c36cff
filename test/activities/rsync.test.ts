import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { CancelledFailure } from '@temporalio/common';
import { MockActivityEnvironment } from '@temporalio/testing';
import {
  checkPlatformVisible,
  listPlatformSites,
  platformExists,
  removePlatform,
  syncPlatform,
  syncPlatformToServers,
} from '../../activities/platform';
import { platformSchema, type Platform } from '../../domain/model';
import { useTestBed } from '../support/testbed';
import { serverOf, useWorkerEnvironment } from './bed-servers';

const work = useWorkerEnvironment();
const bed = useTestBed({ hosts: [{ roles: [] }, { roles: [] }, { roles: [] }] });

const wordpress: Platform = platformSchema.parse({
  name: 'wp',
  target: { kind: 'cluster', name: 'c1' },
  source: { type: 'path', path: '/usr/share/wordpress' },
  profile: 'wordpress',
});

/** A Drupal-like tree: sites/all and sites/default from the source, plus things that must never be pushed. */
function drupalSource(): Platform {
  const dir = mkdtempSync(join(work, 'drupal-'));
  for (const [path, content] of Object.entries({
    'index.php': '<?php echo "drupal";\n',
    'sites/all/modules/views/views.module': '<?php\n',
    'sites/default/default.settings.php': '<?php\n',
    'sites/default/files/from-a-developer.jpg': 'not for servers',
    '.git/HEAD': 'ref: refs/heads/main\n',
  })) {
    mkdirSync(join(dir, path, '..'), { recursive: true });
    writeFileSync(join(dir, path), content);
  }
  return platformSchema.parse({
    name: 'd10',
    target: { kind: 'cluster', name: 'c1' },
    source: { type: 'path', path: dir },
    profile: 'drupal',
  });
}

async function sh(host: string, script: string): Promise<string> {
  return (await bed().exec(host, ['sh', '-c', script])).stdout;
}

describe('platform code by rsync', () => {
  test('pushes the WordPress tree to a host, owned by aegir, and a second push changes nothing', async () => {
    const h1 = serverOf(bed(), 'h1');
    assert.equal(await platformExists({ server: h1, platform: wordpress }), false);
    const first = await syncPlatform({ server: h1, platform: wordpress });
    assert.ok(first.filesChanged > 2700, `filesChanged ${first.filesChanged}`);
    assert.ok(first.bytesSent > 40_000_000);
    assert.equal(first.itemized.length, 100);
    const expected = execFileSync('sh', ['-c', 'cd /usr/share/wordpress && find . ! -name wp-config.php | wc -l'], {
      encoding: 'utf8',
    }).trim();
    assert.equal(
      (
        await sh(
          'h1',
          'cd /var/aegir/platforms/wp && find . ! -name wp-config.php ! -name sitefleet-health.php | wc -l',
        )
      ).trim(),
      expected,
      "the source's tree, and beside it only sitefleet's own two files",
    );
    assert.equal((await sh('h1', 'stat -c %U:%G /var/aegir/platforms/wp/index.php')).trim(), 'aegir:aegir');
    assert.match(
      await bed().readFile('h1', '/var/aegir/platforms/wp/wp-config.php'),
      /Managed by sitefleet: platform wp/,
    );
    assert.equal(await platformExists({ server: h1, platform: wordpress }), true);

    const started = performance.now();
    const second = await syncPlatform({ server: h1, platform: wordpress });
    assert.equal(second.filesChanged, 0);
    assert.ok(performance.now() - started < 2000, 'a no-op push rides the open connection');
  });

  test('reuses one OpenSSH connection per host for every rsync, pinned by the inventory key', async () => {
    const h1 = serverOf(bed(), 'h1');
    await syncPlatform({ server: h1, platform: wordpress, dryRun: true });
    await syncPlatform({ server: h1, platform: wordpress, dryRun: true });
    // One connection from node-ssh (commands) and one OpenSSH control master (every rsync).
    const connections = await sh('h1', "ss -Htn state established '( sport = :22 )' | wc -l");
    assert.equal(connections.trim(), '2');
  });

  test('a dry run reports drift and changes nothing; a push repairs it', async () => {
    const h1 = serverOf(bed(), 'h1');
    await sh(
      'h1',
      'cd /var/aegir/platforms/wp && echo tampered > index.php && rm wp-cron.php && echo stray > stray.php && chmod 600 xmlrpc.php',
    );
    const drift = await syncPlatform({ server: h1, platform: wordpress, dryRun: true });
    assert.equal(drift.dryRun, true);
    assert.deepEqual(
      [...drift.itemized].sort(),
      ['*deleting   stray.php', '.f...p..... xmlrpc.php', '<f+++++++++ wp-cron.php', '<f.st...... index.php'].sort(),
    );
    assert.equal(
      await bed().readFile('h1', '/var/aegir/platforms/wp/index.php'),
      'tampered\n',
      'the dry run changed nothing',
    );
    const repair = await syncPlatform({ server: h1, platform: wordpress });
    assert.equal(repair.filesChanged, 4);
    assert.equal((await syncPlatform({ server: h1, platform: wordpress, dryRun: true })).filesChanged, 0);
  });

  test('a push never touches site directories, alias links or uploads, and never pushes VCS data or developer uploads', async () => {
    const h2 = serverOf(bed(), 'h2');
    const drupal = drupalSource();
    await syncPlatform({ server: h2, platform: drupal });
    await sh(
      'h2',
      'cd /var/aegir/platforms/d10/sites && mkdir -p example.com/files default/files && echo s > example.com/settings.php && ' +
        'echo u > example.com/files/upload.jpg && echo u > default/files/upload.jpg && ln -s example.com www.example.com',
    );
    const again = await syncPlatform({ server: h2, platform: drupal });
    assert.equal(again.filesChanged, 0, again.itemized.join('\n'));
    const tree = await sh('h2', 'cd /var/aegir/platforms/d10 && find . | sort');
    assert.deepEqual(tree.trim().split('\n'), [
      '.',
      './index.php',
      './sites',
      './sites/all',
      './sites/all/modules',
      './sites/all/modules/views',
      './sites/all/modules/views/views.module',
      './sites/default',
      './sites/default/default.settings.php',
      './sites/default/files',
      './sites/default/files/upload.jpg',
      './sites/example.com',
      './sites/example.com/files',
      './sites/example.com/files/upload.jpg',
      './sites/example.com/settings.php',
      './sites/www.example.com',
    ]);
    assert.deepEqual(await listPlatformSites({ server: h2, platform: drupal }), ['example.com']);
    assert.deepEqual(await removePlatform({ server: h2, platform: drupal }), { server: 'h2', removed: true });
    assert.deepEqual(await removePlatform({ server: h2, platform: drupal }), { server: 'h2', removed: false });
  });

  test('fans out to many hosts with one result per host: a host that is down is reported, the others are done', async () => {
    const [h1, h2, h3] = ['h1', 'h2', 'h3'].map((n) => serverOf(bed(), n));
    await bed().stopService('h3', 'ssh');
    try {
      const { results } = await syncPlatformToServers({
        servers: [h1!, h2!, h3!],
        platform: wordpress,
        maxParallel: 2,
      });
      assert.deepEqual(
        results.map((r) => [r.server, r.ok]),
        [
          ['h1', true],
          ['h2', true],
          ['h3', false],
        ],
      );
      const down = results[2];
      assert.ok(down && !down.ok);
      assert.equal(down.type, 'HostUnreachable');
      assert.equal(down.retryable, true);
      assert.match(down.error, /server h3/);
      assert.deepEqual(await checkPlatformVisible({ server: h2!, platform: wordpress }), {
        server: 'h2',
        visible: true,
        detail: `/var/aegir/platforms/wp has ${(await sh('h2', 'ls -A /var/aegir/platforms/wp | wc -l')).trim()} entries`,
      });
    } finally {
      await bed().startService('h3', 'ssh');
    }
  });

  test('inside an activity it heartbeats progress, and cancellation stops rsync', async () => {
    const h3 = serverOf(bed(), 'h3');
    const beats: unknown[] = [];
    const env = new MockActivityEnvironment();
    env.on('heartbeat', (d: unknown) => beats.push(d));
    const summary = (await env.run(syncPlatform, { server: h3, platform: wordpress })) as Awaited<
      ReturnType<typeof syncPlatform>
    >;
    assert.ok(summary.filesChanged > 2700);
    assert.ok(beats.length >= 5, `${beats.length} heartbeats`);
    const progress = beats.filter((b): b is { items: number } => typeof (b as { items?: unknown }).items === 'number');
    assert.ok(progress.length >= 5, `${progress.length} progress heartbeats`);
    assert.ok((progress.at(-1)?.items ?? 0) > (progress[0]?.items ?? 0), 'the item count grows');

    const other = { ...wordpress, name: 'wp2' };
    const cancelled = new MockActivityEnvironment();
    const running = cancelled.run(syncPlatform, { server: h3, platform: other });
    await new Promise((r) => setTimeout(r, 300));
    cancelled.cancel();
    await assert.rejects(running, (err: unknown) => err instanceof CancelledFailure);
    // Only this bed's rsync to h3 counts: other test files may run rsyncs to their own beds at the same time.
    const leftover = execFileSync(
      'sh',
      ['-c', `pgrep -af '[r]sync .*Hostname=${h3.host} .*:/var/aegir/platforms/wp2' || true`],
      {
        encoding: 'utf8',
      },
    );
    assert.equal(leftover, '', 'no rsync left running');
  });

  test('a path source missing on this worker is a non-retryable BadInput that says where to run it', async () => {
    const h1 = serverOf(bed(), 'h1');
    const missing = { ...wordpress, name: 'gone', source: { type: 'path' as const, path: join(work, 'no-such-dir') } };
    await assert.rejects(syncPlatform({ server: h1, platform: missing }), /not a directory on worker host .*route it/);
  });
});
