/**
 * End to end on test hosts: a single apache server and a growing nginx cluster. Disable/enable, backup/restore,
 * adding and removing a cluster member, migrating a site between platforms, and deleting everything.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { WorkflowFailedError } from '@temporalio/client';
import type { Platform, Site } from '../../domain/model';
import { workflowIds, type WebGroup } from '../../domain/operations';
import { clusterGroup, useFleet } from '../support/fleet';

const fleet = useFleet({
  hosts: [{ roles: ['web-apache'] }, { roles: ['web-nginx'] }, { roles: ['web-nginx'] }, { roles: ['db'] }],
});

const onApache: Platform = {
  name: 'wpa',
  target: { kind: 'server', name: 'h1' },
  source: { type: 'path', path: '/usr/share/wordpress' },
  profile: 'wordpress',
};
const onCluster: Platform = { ...onApache, name: 'wpc', target: { kind: 'cluster', name: 'c2' } };
const site = (domain: string, platform: string): Site => ({
  domain,
  aliases: [],
  platform,
  dbServer: 'h4',
  https: false,
  status: 'enabled',
});

async function restName(host: string, domain: string): Promise<string | number> {
  const res = await fleet().bed.httpGet(host, '/?rest_route=/', { headers: { Host: domain } });
  if (res.status !== 200) return res.status;
  return (JSON.parse(res.body) as { name: string }).name;
}

describe('site lifecycle on apache and on a cluster that grows and shrinks', () => {
  const single = (): WebGroup => ({
    kind: 'server',
    name: 'h1',
    members: [fleet().server('h1')],
    codeReceivers: ['h1'],
  });
  const cluster = (names: string[]) =>
    clusterGroup(
      'c2',
      names.map((n) => fleet().server(n)),
    );
  const db = () => fleet().server('h4');
  const apacheSite = site('apache.example.com', 'wpa');

  test('VerifyServer reports what a new server offers, detected on the server itself', async () => {
    const report = await fleet().run<{
      ok: boolean;
      problems: string[];
      http: { type: string } | null;
      rsync: boolean;
      aegir: { uid: number } | null;
    }>('VerifyServer', workflowIds.server('h1'), { server: fleet().server('h1') });
    assert.deepEqual(report.problems, []);
    assert.equal(report.ok, true);
    assert.equal(report.http?.type, 'apache');
    assert.equal(report.rsync, true);
    assert.equal(report.aegir?.uid, 1500);
  });

  test('InstallSite on a single apache server serves WordPress', async () => {
    await fleet().run('CreatePlatform', workflowIds.platform('wpa'), { platform: onApache, group: single() });
    await fleet().run('InstallSite', workflowIds.site(apacheSite.domain), {
      site: apacheSite,
      platform: onApache,
      group: single(),
      dbServer: db(),
    });
    assert.equal(await restName('h1', apacheSite.domain), apacheSite.domain);
  });

  test('DisableSite answers 503 on every member; EnableSite serves the site again', async () => {
    const input = { site: apacheSite, platform: onApache, group: single(), dbServer: db() };
    await fleet().run('DisableSite', workflowIds.site(apacheSite.domain), input);
    assert.equal((await fleet().bed.httpGet('h1', '/', { headers: { Host: apacheSite.domain } })).status, 503);
    await fleet().run('EnableSite', workflowIds.site(apacheSite.domain), input);
    assert.equal(await restName('h1', apacheSite.domain), apacheSite.domain);
  });

  test('BackupSite then RestoreSite brings back a lost file and the database', async () => {
    const input = { site: apacheSite, platform: onApache, group: single(), dbServer: db() };
    const made = await fleet().run<{ backup: string }>('BackupSite', workflowIds.site(apacheSite.domain), input);
    assert.match(made.backup, /^apache\.example\.com-\d{8}T\d{6}Z\.tar\.gz$/);
    const listing = await fleet().bed.exec('h1', ['tar', '-tzf', `/var/aegir/backups/${made.backup}`]);
    assert.match(listing.stdout, /database\.sql/);
    assert.match(listing.stdout, /apache\.example\.com\/wp-config\.php/);

    // Damage: the blog's title changes in the database, and the settings file is gone (the site breaks).
    const dbName = (
      await fleet().bed.exec('h4', [
        'mysql',
        '--batch',
        '--skip-column-names',
        '-e',
        "SHOW DATABASES LIKE 'apache\\_example\\_com\\_%'",
      ])
    ).stdout.trim();
    await fleet().bed.exec('h4', [
      'mysql',
      dbName,
      '-e',
      "UPDATE wp_options SET option_value = 'damaged' WHERE option_name = 'blogname'",
    ]);
    assert.equal(await restName('h1', apacheSite.domain), 'damaged');
    await fleet().bed.exec('h1', ['rm', '-f', '/var/aegir/platforms/wpa/sites/apache.example.com/wp-config.php']);
    assert.notEqual(await restName('h1', apacheSite.domain), apacheSite.domain, 'the site is broken');
    await fleet().run('RestoreSite', workflowIds.site(apacheSite.domain), { ...input, backup: made.backup });
    assert.equal(await restName('h1', apacheSite.domain), apacheSite.domain, 'the restored site answers');
  });

  const cSite = site('c.example.com', 'wpc');
  const memberInput = (members: string[]) => ({
    group: cluster(members),
    member: fleet().server('h3'),
    platforms: [onCluster],
    sites: [cSite],
    dbServers: [db()],
  });

  test('an AddClusterMember that fails on the new member (php-fpm down) leaves it and the grants as they were', async () => {
    await fleet().run('CreatePlatformOnCluster', workflowIds.platform('wpc'), {
      platform: onCluster,
      group: cluster(['h2']),
    });
    await fleet().run('InstallSiteOnCluster', workflowIds.site(cSite.domain), {
      site: cSite,
      platform: onCluster,
      group: cluster(['h2']),
      dbServer: db(),
    });
    assert.equal(
      (await fleet().bed.httpGet('h3', '/', { headers: { Host: cSite.domain } })).status,
      404,
      'h3 does not serve yet',
    );

    const before = await memberState();
    await fleet().bed.stopService('h3', 'php8.2-fpm');
    try {
      await assert.rejects(
        fleet().run('AddClusterMember', workflowIds.cluster('c2'), memberInput(['h2'])),
        (err: unknown) =>
          err instanceof WorkflowFailedError &&
          /c\.example\.com through h3: .*Every completed step was undone/s.test(String(err.cause?.message)),
      );
    } finally {
      await fleet().bed.startService('h3', 'php8.2-fpm');
    }
    assert.deepEqual(await memberState(), before);
  });

  test('AddClusterMember gives a new member every platform and site before it serves; RemoveClusterMember takes it out', async () => {
    const before = await memberState();
    await fleet().run('AddClusterMember', workflowIds.cluster('c2'), memberInput(['h2']));
    const h3 = fleet().server('h3');
    const h3Address = (h3.address ?? h3.host).replace(/\./g, '\\.');
    assert.match((await memberState()).users ?? '', new RegExp(`\\t${h3Address}$`, 'm'), 'h3 is granted');
    assert.equal(await restName('h3', cSite.domain), cSite.domain, 'the new member serves the site');

    await fleet().run('RemoveClusterMember', workflowIds.cluster('c2'), memberInput(['h2', 'h3']));
    assert.equal(
      (await fleet().bed.httpGet('h3', '/', { headers: { Host: cSite.domain } })).status,
      404,
      'h3 no longer serves',
    );
    const gone = await fleet().bed.exec('h3', ['test', '-e', '/var/aegir/platforms/wpc'], { check: false });
    assert.notEqual(gone.code, 0, 'the platform is removed from h3');
    assert.equal(await restName('h2', cSite.domain), cSite.domain, 'h2 still serves');
    // h2 keeps its account (it still serves through it, above); h3's is dropped, so all is as before the add.
    assert.deepEqual(await memberState(), before, "h3's platforms, vhosts and database accounts are gone");
  });

  test('MigrateSite moves a site from the apache server to the cluster with its database', async () => {
    await fleet().run('MigrateSite', workflowIds.site(apacheSite.domain), {
      site: apacheSite,
      platform: onApache,
      group: single(),
      dbServer: db(),
      to: { platform: onCluster, group: cluster(['h2']) },
    });
    assert.equal(await restName('h2', apacheSite.domain), apacheSite.domain, 'the cluster serves the migrated site');
    const old = await fleet().bed.exec('h1', ['test', '-e', '/var/aegir/platforms/wpa/sites/apache.example.com'], {
      check: false,
    });
    assert.notEqual(old.code, 0, 'the old site directory is gone');
    assert.notEqual(await restName('h1', apacheSite.domain), apacheSite.domain, 'the old server no longer serves it');
  });

  test('DeleteSite and DeletePlatform leave nothing behind', async () => {
    const migrated = site('apache.example.com', 'wpc');
    await fleet().run('DeleteSite', workflowIds.site(migrated.domain), {
      site: migrated,
      platform: onCluster,
      group: cluster(['h2']),
      dbServer: db(),
    });
    await fleet().run('DeletePlatform', workflowIds.platform('wpa'), {
      platform: onApache,
      group: single(),
      sites: [],
    });
    const platform = await fleet().bed.exec('h1', ['test', '-e', '/var/aegir/platforms/wpa'], { check: false });
    assert.notEqual(platform.code, 0, 'the platform is gone');
    const dbs = await fleet().bed.exec('h4', ['mysql', '--batch', '--skip-column-names', '-e', 'SHOW DATABASES']);
    assert.doesNotMatch(dbs.stdout, /apache_example_com/, 'the database is dropped');
  });

  /**
   * What AddClusterMember puts on h3 and the db server: platforms, vhosts, and the site users' accounts (the
   * platforms root itself, which a platform push creates, is the server's and stays).
   */
  async function memberState(): Promise<Record<string, string>> {
    const h3 = await fleet().bed.exec('h3', [
      'sh',
      '-c',
      'find /var/aegir/platforms /var/aegir/config/server_h3/nginx/vhost.d -mindepth 1 -maxdepth 1 2>/dev/null | sort; true',
    ]);
    const users = await fleet().bed.exec('h4', [
      'mysql',
      '--batch',
      '-e',
      'SELECT user, host FROM mysql.user ORDER BY user, host',
    ]);
    return { h3: h3.stdout, users: users.stdout };
  }
});
