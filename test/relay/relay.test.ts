/**
 * End to end on shaped test hosts (200 Mbit/s per host link and for the controller's egress, as in
 * TESTBED-NOTES.md): CreatePlatformOnCluster relays Debian's WordPress through four members. Every member ends
 * with exactly what a platform push gives (no rsync drift), sites and uploads survive an update, and a member
 * killed in the middle of the stream is completed by rsync once it is back, with nothing left behind.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { Platform, Server } from '../../domain/model';
import { workflowIds } from '../../domain/operations';
import type { TransferOptions } from '../../domain/transfer';
import { syncPlatform } from '../../activities/platform';
import { relayKeyMarker, relayStagingDir } from '../../activities/relay/relay-chain';
import type { PlatformResult } from '../../workflows/platform';
import type { SyncedMember } from '../../workflows/relay';
import { clusterGroup, useFleet } from '../support/fleet';

const HOSTS = ['h1', 'h2', 'h3', 'h4'];
const fleet = useFleet({
  hosts: HOSTS.map(() => ({ roles: ['web-nginx' as const] })),
  shaping: { rate: '200mbit', controllerRate: '200mbit' },
});

const wordpress = (name: string): Platform => ({
  name,
  target: { kind: 'cluster', name: 'c1' },
  source: { type: 'path', path: '/usr/share/wordpress' },
  profile: 'wordpress',
});

type Result = Omit<PlatformResult, 'synced'> & { synced: SyncedMember[] };

async function createPlatform(platform: Platform, transfer: TransferOptions): Promise<Result> {
  const members = HOSTS.map((h) => fleet().server(h));
  return fleet().run<Result>('CreatePlatformOnCluster', workflowIds.platform(platform.name), {
    platform,
    group: clusterGroup('c1', members),
    transfer,
  });
}

/** What rsync would still change on each member: nothing, if the member has exactly what a push gives. */
async function drift(platform: Platform): Promise<Record<string, string[]>> {
  const found: Record<string, string[]> = {};
  for (const host of HOSTS) {
    const summary = await syncPlatform({ server: fleet().server(host), platform, dryRun: true });
    found[host] = summary.itemized;
  }
  return found;
}

/** Relay leftovers on a member: staging directories and authorized relay keys. */
async function leftovers(host: string, platform: Platform): Promise<string> {
  const server: Server = fleet().server(host);
  const staging = relayStagingDir(server, platform.name);
  const r = await fleet().bed.exec(host, [
    'sh',
    '-c',
    'ls -d "$1" 2>/dev/null; grep -F "$2" /var/aegir/.ssh/authorized_keys || true',
    'check',
    staging,
    relayKeyMarker(platform.name),
  ]);
  return r.stdout.trim();
}

describe('relay of a WordPress platform through four members on 200 Mbit/s links', () => {
  const noDrift = Object.fromEntries(HOSTS.map((h) => [h, []]));

  test('auto relays a new platform on a slow uplink: every member verified, equal to the source, no rsync drift', async () => {
    const platform = wordpress('wp');
    const result = await createPlatform(platform, { mode: 'auto', uplinkMbit: 200 });
    assert.deepEqual(
      result.synced.map((s) => `${s.server}:${s.via}`),
      HOSTS.map((h) => `${h}:relay`),
    );
    // One copy left the controller, not four.
    const sent = result.synced.reduce((sum, s) => sum + s.bytesSent, 0);
    assert.ok(sent < 60e6, `the controller sent ${sent} bytes`);
    assert.deepEqual(await drift(platform), noDrift);
    for (const host of HOSTS) {
      const dispatcher = await fleet().bed.readFile(host, '/var/aegir/platforms/wp/wp-config.php');
      assert.match(dispatcher, /Managed by sitefleet/, `${host} has the WordPress dispatcher`);
      const owner = await fleet().bed.exec(host, ['stat', '-c', '%U:%G', '/var/aegir/platforms/wp/index.php']);
      assert.equal(owner.stdout.trim(), 'aegir:aegir');
      assert.equal(await leftovers(host, platform), '', `${host} has no relay leftovers`);
    }
  });

  test('an update by relay keeps sites, uploads and alias links, and drops what the source no longer has', async () => {
    const platform = wordpress('wp');
    const root = '/var/aegir/platforms/wp';
    for (const host of HOSTS) {
      await fleet().bed.exec(host, [
        'sh',
        '-c',
        [
          'set -e',
          `install -d -o aegir -g aegir ${root}/sites/blog.example.com/files`,
          `echo upload > ${root}/sites/blog.example.com/files/photo.jpg`,
          `ln -sfn blog.example.com ${root}/sites/www.blog.example.com`,
          `echo stale > ${root}/stale.php`,
          `echo local edit > ${root}/index.php`,
        ].join('\n'),
      ]);
    }
    const result = await createPlatform(platform, { mode: 'relay' });
    assert.ok(result.synced.every((s) => s.via === 'relay'));
    assert.deepEqual(await drift(platform), noDrift);
    for (const host of HOSTS) {
      assert.equal(await fleet().bed.readFile(host, `${root}/sites/blog.example.com/files/photo.jpg`), 'upload\n');
      const alias = await fleet().bed.exec(host, ['readlink', `${root}/sites/www.blog.example.com`]);
      assert.equal(alias.stdout.trim(), 'blog.example.com');
      const stale = await fleet().bed.exec(host, ['test', '-e', `${root}/stale.php`], { check: false });
      assert.notEqual(stale.code, 0, `${host}: stale.php is gone`);
      assert.equal(await leftovers(host, platform), '');
    }
  });

  test('auto pushes a platform that is already up to date with rsync: there is nothing to relay', async () => {
    const platform = wordpress('wp');
    const result = await createPlatform(platform, { mode: 'auto', uplinkMbit: 200 });
    assert.deepEqual(
      result.synced.map((s) => `${s.server}:${s.via}:${s.filesChanged}`),
      HOSTS.map((h) => `${h}:rsync:0`),
    );
  });

  test('a member killed mid-stream is completed by rsync when it is back; nothing is left behind', async () => {
    const platform = wordpress('wp2');
    const staging = relayStagingDir(fleet().server('h2'), platform.name);
    const members = HOSTS.map((h) => fleet().server(h));
    const handle = await fleet().start('CreatePlatformOnCluster', workflowIds.platform(platform.name), {
      platform,
      group: clusterGroup('c1', members),
      transfer: { mode: 'relay' },
    });
    // Wait until h2 is unpacking, then power it off.
    const deadline = Date.now() + 60_000;
    for (;;) {
      const r = await fleet().bed.exec('h2', [
        'sh',
        '-c',
        'find "$1" -type f 2>/dev/null | wc -l',
        'count',
        `${staging}/tree`,
      ]);
      if (Number(r.stdout.trim()) > 100) break;
      assert.ok(Date.now() < deadline, 'h2 never started to unpack');
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    await fleet().bed.stopHost('h2');
    await new Promise((resolve) => setTimeout(resolve, 1500));
    await fleet().bed.startHost('h2');
    const result = (await handle.result()) as Result;
    const via = Object.fromEntries(result.synced.map((s) => [s.server, s.via]));
    assert.equal(via.h1, 'relay', 'h1, before the failure, completed by relay');
    assert.equal(via.h2, 'rsync', 'h2 was repaired by rsync');
    // h3 and h4 got a cut stream: it failed their verification, so they were pushed by rsync too.
    assert.equal(via.h3, 'rsync');
    assert.equal(via.h4, 'rsync');
    assert.deepEqual(await drift(platform), noDrift);
    for (const host of HOSTS) assert.equal(await leftovers(host, platform), '', `${host} has no relay leftovers`);
  });
});
