import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { MockActivityEnvironment } from '@temporalio/testing';
import { backupSite, copyBackup, restoreSiteBackup } from '../../activities/backup';
import { ensureDatabase, siteDatabaseName } from '../../activities/database';
import { syncPlatform } from '../../activities/platform';
import { ensureSiteDir } from '../../activities/site-files';
import { platformSchema, siteSchema, type Server } from '../../domain/model';
import { useTestBed } from '../support/testbed';
import { failure, serverOf, useWorkerEnvironment } from './bed-servers';

const work = useWorkerEnvironment();
// h1 holds the site, h2 is another code receiver, h3 the database server.
const bed = useTestBed({ hosts: [{ roles: [] }, { roles: [] }, { roles: ['db'] }] });

const source = mkdtempSync(join(work, 'app-'));
writeFileSync(join(source, 'index.php'), '<?php\n');
const platform = platformSchema.parse({
  name: 'app',
  target: { kind: 'cluster', name: 'c1' },
  source: { type: 'path', path: source },
  profile: 'php',
});
const site = siteSchema.parse({ domain: 'shop.example.com', platform: 'app', dbServer: 'h3' });
const database = siteDatabaseName(site.domain);
const stamp = '20261126T140000Z';
const backup = `${site.domain}-${stamp}.tar.gz`;
const sitePath = '/var/aegir/platforms/app/sites/shop.example.com';

function servers(): [Server, Server, Server] {
  return ['h1', 'h2', 'h3'].map((n) => serverOf(bed(), n)) as [Server, Server, Server];
}

async function sql(statement: string): Promise<string> {
  return (
    await bed().exec('h3', ['mysql', '--batch', '--skip-column-names', database], { input: `${statement}\n` })
  ).stdout.trim();
}

describe('site backups', () => {
  test('a backup holds the site directory and a dump of its database, streamed from the database server', async () => {
    const [h1, h2, h3] = servers();
    for (const server of [h1, h2]) await syncPlatform({ server, platform });
    await ensureDatabase({ dbServer: h3, site, clients: [h1.host, h2.host] });
    await ensureSiteDir({ server: h1, site, platform, dbServer: h3 });
    await bed().exec('h1', ['sh', '-c', `echo original > ${sitePath}/files/logo.png`]);
    // About 20 MB of rows: more than a command's output is ever held in memory.
    await sql(
      "CREATE TABLE orders AS SELECT seq AS id, REPEAT('x', 100) AS pad FROM seq_1_to_200000; CREATE TABLE notes (t TEXT); INSERT INTO notes VALUES ('original');",
    );

    const env = new MockActivityEnvironment();
    const beats: unknown[] = [];
    env.on('heartbeat', (d: unknown) => beats.push(d));
    const made = (await env.run(backupSite, { server: h1, site, platform, dbServer: h3, stamp })) as Awaited<
      ReturnType<typeof backupSite>
    >;
    assert.deepEqual({ ...made, bytes: 0 }, { server: 'h1', backup, path: `/var/aegir/backups/${backup}`, bytes: 0 });
    assert.ok(beats.length >= 1);
    const listing = (await bed().exec('h1', ['tar', '-tzvf', made.path])).stdout;
    for (const entry of ['shop.example.com/files/logo.png', 'shop.example.com/settings.php', 'database.sql'])
      assert.match(listing, new RegExp(entry));
    const dump = await bed().exec('h1', ['sh', '-c', `tar -xzOf ${made.path} database.sql | grep -c 'INSERT INTO'`]);
    assert.ok(Number(dump.stdout.trim()) >= 2);
    assert.equal((await bed().exec('h1', ['stat', '-c', '%a', made.path])).stdout.trim(), '600');
    assert.equal(made.bytes, Number((await bed().exec('h1', ['stat', '-c', '%s', made.path])).stdout.trim()));
  });

  test('backing up again with the same stamp returns the same backup and writes nothing', async () => {
    const [h1, , h3] = servers();
    const before = (await bed().exec('h1', ['stat', '-c', '%i %Y', `/var/aegir/backups/${backup}`])).stdout;
    const again = await backupSite({ server: h1, site, platform, dbServer: h3, stamp });
    assert.equal(again.backup, backup);
    assert.equal((await bed().exec('h1', ['stat', '-c', '%i %Y', `/var/aegir/backups/${backup}`])).stdout, before);
  });

  test('copies a backup to another server, checked by sha256; a second copy is a no-op', async () => {
    const [h1, h2] = servers();
    const copied = await copyBackup({ from: h1, to: h2, domain: site.domain, backup });
    assert.equal(copied.copied, true);
    const sum = async (host: string) =>
      (await bed().exec(host, ['sha256sum', `/var/aegir/backups/${backup}`])).stdout.split(' ')[0];
    assert.equal(await sum('h2'), await sum('h1'));
    assert.equal((await copyBackup({ from: h1, to: h2, domain: site.domain, backup })).copied, false);
  });

  test('restores the site directory and the database; restoring again gives the same state', async () => {
    const [h1, , h3] = servers();
    await bed().exec('h1', [
      'sh',
      '-c',
      `echo changed > ${sitePath}/files/logo.png && echo stray > ${sitePath}/files/new.png`,
    ]);
    await sql("UPDATE notes SET t = 'changed'; DROP TABLE orders;");
    for (let i = 0; i < 2; i++) {
      const restored = await restoreSiteBackup({
        server: h1,
        site,
        platform,
        dbServer: h3,
        backup,
        restoreDatabase: true,
      });
      assert.deepEqual(restored, {
        server: 'h1',
        backup,
        restored: backup,
        restoredFiles: true,
        restoredDatabase: true,
      });
      assert.equal(await bed().readFile('h1', `${sitePath}/files/logo.png`), 'original\n');
      assert.equal((await bed().exec('h1', ['test', '-e', `${sitePath}/files/new.png`], { check: false })).code, 1);
      assert.equal(await sql('SELECT t FROM notes'), 'original');
      assert.equal(await sql('SELECT COUNT(*) FROM orders'), '200000');
      assert.equal(
        (await bed().exec('h1', ['sh', '-c', `ls -A /var/aegir/platforms/app/sites`])).stdout.trim(),
        'shop.example.com',
      );
    }
  });

  test('a backup without a database dump never drops the database', async () => {
    const [h1, h2, h3] = servers();
    await ensureSiteDir({ server: h2, site, platform, dbServer: h3 });
    const filesOnly = await backupSite({ server: h2, site, platform, stamp: '20261126T150000Z' });
    await copyBackup({ from: h2, to: h1, domain: site.domain, backup: filesOnly.backup });
    await assert.rejects(
      restoreSiteBackup({ server: h1, site, platform, dbServer: h3, backup: filesOnly.backup, restoreDatabase: true }),
      failure('BadInput', { nonRetryable: true, message: /has no database dump .*left as it is/ }),
    );
    assert.equal(await sql('SELECT t FROM notes'), 'original');
  });

  test("refuses a backup name that is not one of this site's, and a missing backup", async () => {
    const [h1, h2] = servers();
    await assert.rejects(
      restoreSiteBackup({ server: h1, site, platform, backup: '../../etc/passwd', restoreDatabase: false }),
      failure('BadInput', { nonRetryable: true }),
    );
    await assert.rejects(
      copyBackup({ from: h1, to: h2, domain: site.domain, backup: 'other.example.com-20261126T140000Z.tar.gz' }),
      /not a backup of shop\.example\.com/,
    );
    await assert.rejects(
      copyBackup({ from: h1, to: h2, domain: site.domain, backup: `${site.domain}-20990101T000000Z.tar.gz` }),
      failure('BadInput', { nonRetryable: true, message: /server h1 has no backup/ }),
    );
  });
});
