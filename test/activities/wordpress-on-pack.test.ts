/**
 * Every activity of a WordPress site on a pack, in the order the workflows use them, against real hosts:
 * h1 is the master (nginx, nfs-ganesha), h2 a slave (Apache, sshfs mount of the master's platforms), h3 the
 * database server. The site must answer through both members, and the compensations must take it all back.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { probeSite } from '../../activities/checks';
import { checkDatabaseLogin, dropDatabase, ensureDatabase } from '../../activities/database';
import { ensureExport, removeExport } from '../../activities/nfs-export';
import { ensureShareMount, removeShareMount } from '../../activities/nfs-mount';
import { checkPlatformVisible, syncPlatform } from '../../activities/platform';
import { ensureSiteDir, removeSiteDir } from '../../activities/site-files';
import { runSiteInstaller } from '../../activities/site-installer';
import { verifyNode } from '../../activities/verify-node';
import { installVhost, restoreVhost } from '../../activities/vhost';
import { ensureWebConfig } from '../../activities/web-server';
import { platformSchema, siteSchema, type Server } from '../../domain/model';
import type { PackShare, WebGroup } from '../../domain/operations';
import { useTestBed } from '../support/testbed';
import { serverOf, useWorkerEnvironment } from './bed-servers';

useWorkerEnvironment();
const bed = useTestBed({ hosts: [{ roles: ['web-nginx', 'nfs'] }, { roles: ['web-apache'] }, { roles: ['db'] }] });

const platform = platformSchema.parse({
  name: 'wp',
  target: { kind: 'pack', name: 'p1' },
  source: { type: 'path', path: '/usr/share/wordpress' },
  profile: 'wordpress',
});
const site = siteSchema.parse({
  domain: 'blog.example.com',
  aliases: ['www.blog.example.com'],
  platform: 'wp',
  dbServer: 'h3',
});

function members(): { master: Server; slave: Server; db: Server; share: PackShare; group: WebGroup } {
  const [master, slave, db] = ['h1', 'h2', 'h3'].map((n) => serverOf(bed(), n)) as [Server, Server, Server];
  const share: PackShare = {
    server: master,
    exportPath: '/var/aegir/platforms',
    clients: bed().plan.subnet,
    clientFlavour: 'sshfs',
  };
  return {
    master,
    slave,
    db,
    share,
    group: { kind: 'pack', name: 'p1', members: [master, slave], codeReceivers: ['h1'], share },
  };
}

describe('a WordPress site on a pack', () => {
  test('share, platform, database, site directory, vhosts and installer: the site answers through every member', async () => {
    const { master, slave, db, share } = members();
    for (const server of [master, slave]) await ensureWebConfig({ server });
    await ensureExport({ share, packName: 'p1' });
    await ensureShareMount({ slave, share, packName: 'p1' });
    await syncPlatform({ server: master, platform });
    assert.equal((await checkPlatformVisible({ server: slave, platform })).visible, true);
    await ensureDatabase({ dbServer: db, site, clients: [master.host, slave.host] });
    await ensureSiteDir({ server: master, site, platform, dbServer: db });
    for (const server of [master, slave]) {
      await installVhost({ server, site, platform });
      assert.equal((await checkDatabaseLogin({ server, dbServer: db, site })).ok, true);
    }
    const installed = await runSiteInstaller({ server: master, site, platform, dbServer: db });
    assert.deepEqual(installed, { server: 'h1', domain: site.domain, ran: true, alreadyInstalled: false });
    for (const server of [master, slave]) {
      const probe = await probeSite({
        server,
        site,
        path: '/wp-login.php',
        expectStatus: [200],
        expectBodyMarker: site.domain,
      });
      assert.equal(probe.ok, true, probe.detail);
    }
  });

  test('running every step again finds the same state', async () => {
    const { master, slave, db, share } = members();
    assert.equal((await ensureExport({ share, packName: 'p1' })).changed, false);
    assert.equal((await ensureShareMount({ slave, share, packName: 'p1' })).changed, false);
    assert.equal((await syncPlatform({ server: master, platform })).filesChanged, 0);
    const database = await ensureDatabase({ dbServer: db, site, clients: [master.host, slave.host] });
    assert.deepEqual([database.createdDatabase, database.addedHosts, database.removedHosts], [false, [], []]);
    assert.equal((await ensureSiteDir({ server: master, site, platform, dbServer: db })).changed, false);
    for (const server of [master, slave]) assert.equal((await installVhost({ server, site, platform })).changed, false);
    assert.equal((await runSiteInstaller({ server: slave, site, platform, dbServer: db })).alreadyInstalled, true);
  });

  test('verifyNode reports every check green on both members', async () => {
    const { master, slave, db, group } = members();
    for (const server of [master, slave]) {
      const report = await verifyNode({ server, group, platforms: [platform], sites: [site], dbServers: [db] });
      assert.equal(report.ok, true, JSON.stringify(report.checks, null, 2));
      assert.deepEqual(report.aegirIds, { uid: 1500, gid: 1500 });
      const names = report.checks.map((c) => c.name);
      assert.deepEqual(
        names,
        server === master
          ? ['ssh', 'config-test', 'aegir-ids', 'drift:wp', `db-resolution:${db.host}`, `probe:${site.domain}`]
          : [
              'ssh',
              'config-test',
              'aegir-ids',
              'share-mount',
              // The master runs nfs-ganesha: its export is read over NFS as well as through the sshfs mount.
              'nfs-export',
              'visible:wp',
              `db-resolution:${db.host}`,
              `probe:${site.domain}`,
            ],
      );
    }
  });

  test('drift on the master is found by verifyNode', async () => {
    const { master, db, group } = members();
    await bed().exec('h1', ['sh', '-c', 'echo tampered > /var/aegir/platforms/wp/wp-cron.php']);
    const report = await verifyNode({ server: master, group, platforms: [platform], sites: [site], dbServers: [db] });
    assert.equal(report.ok, false);
    assert.match(
      report.checks.find((c) => c.name === 'drift:wp')?.detail ?? '',
      /1 difference\(s\): <f.st...... wp-cron.php/,
    );
    await syncPlatform({ server: master, platform });
  });

  test('the compensations, in reverse, leave no trace and the site no longer answers', async () => {
    const { master, slave, db, share } = members();
    for (const server of [master, slave]) await restoreVhost({ server, site, previous: null });
    await removeSiteDir({ server: master, site, platform });
    await dropDatabase({ dbServer: db, site, dropDatabase: true, dropUser: true });
    await removeShareMount({ slave, share, packName: 'p1' });
    await removeExport({ share, packName: 'p1' });
    for (const server of [master, slave]) {
      const probe = await probeSite({ server, site, path: '/wp-login.php' });
      assert.equal(probe.status, 404, probe.detail);
    }
    assert.equal(
      (await bed().exec('h3', ['mysql', '--batch', '--skip-column-names', '-e', "SHOW DATABASES LIKE 'blog%'"])).stdout,
      '',
    );
    assert.equal((await bed().exec('h2', ['findmnt', '/var/aegir/platforms'], { check: false })).code, 1);
  });
});
