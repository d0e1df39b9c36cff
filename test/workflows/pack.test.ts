/**
 * End to end on test hosts: a pack of one master and two slaves. The master's nfs-ganesha exports the platforms
 * (read over the real NFS protocol with libnfs); this kernel has no NFS client, so the slaves mount the master's
 * code with the sshfs flavour. A WordPress platform and a site on the pack; verification; uid/gid parity.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { WorkflowFailedError } from '@temporalio/client';
import type { Platform, Server, Site } from '../../domain/model';
import { workflowIds, type WebGroup } from '../../domain/operations';
import type { InstallSiteResult } from '../../workflows/site';
import type { PackShareResult } from '../../workflows/pack-share';
import type { VerifyReport, ResyncReport } from '../../workflows/verify';
import { useFleet } from '../support/fleet';

const fleet = useFleet({
  hosts: [
    { roles: ['web-nginx', 'nfs'] },
    { roles: ['web-nginx'] },
    { roles: ['web-nginx'] },
    { roles: ['db'] },
    { roles: ['web-nginx'], aegirUid: 1600 },
  ],
});

const platform: Platform = {
  name: 'wp',
  target: { kind: 'pack', name: 'p1' },
  source: { type: 'path', path: '/usr/share/wordpress' },
  profile: 'wordpress',
};
const site: Site = {
  domain: 'pack.example.com',
  aliases: [],
  platform: 'wp',
  dbServer: 'h4',
  https: false,
  status: 'enabled',
};

function packGroup(name: string, members: Server[], subnet: string): WebGroup {
  const master = members[0] as Server;
  return {
    kind: 'pack',
    name,
    members,
    codeReceivers: [master.name],
    share: { server: master, exportPath: '/var/aegir/platforms', clients: subnet, clientFlavour: 'sshfs' },
  };
}

describe('pack of one master and two slaves', () => {
  const group = () =>
    packGroup(
      'p1',
      ['h1', 'h2', 'h3'].map((n) => fleet().server(n)),
      fleet().bed.facts.subnet,
    );
  const verifyInput = () => ({
    group: group(),
    platforms: [platform],
    sites: [site],
    dbServers: [fleet().server('h4')],
  });

  test('SetupPackShare exports on the master, mounts on every slave once, and the sentinel is visible', async () => {
    const first = await fleet().run<PackShareResult>('SetupPackShare', workflowIds.pack('p1'), { pack: group() });
    assert.deepEqual(first.mountedOn.sort(), ['h2', 'h3']);
    assert.deepEqual(first.nfsReadable.sort(), ['h2', 'h3'], 'every slave reads the ganesha export over NFS');
    // Running it again changes nothing: one export block, one fstab line, one mount.
    await fleet().run<PackShareResult>('SetupPackShare', workflowIds.pack('p1'), { pack: group() });
    const exports = await fleet().bed.readFile('h1', '/etc/ganesha/ganesha.conf');
    assert.equal(exports.match(/^EXPORT\s*\{/gm)?.length, 1, 'one EXPORT block');
    for (const slave of ['h2', 'h3']) {
      const fstab = await fleet().bed.readFile(slave, '/etc/fstab');
      assert.equal(fstab.split('\n').filter((l) => l.includes('fuse.sshfs')).length, 1, `${slave}: one fstab line`);
      const mounts = await fleet().bed.exec(slave, [
        'findmnt',
        '-n',
        '-o',
        'FSTYPE',
        '--mountpoint',
        '/var/aegir/platforms',
      ]);
      assert.equal(mounts.stdout.trim(), 'fuse.sshfs', `${slave} mounts the share`);
      const nfs = await fleet().bed.exec(slave, ['nfs-ls', `nfs://${fleet().bed.ip('h1')}/var/aegir/platforms`]);
      assert.match(nfs.stdout, /\.sitefleet-sentinel/, `${slave} lists the export over NFS`);
    }
  });

  test('CreatePlatformOnPack sends code to the master only; slaves see it through the share', async () => {
    await fleet().run('CreatePlatformOnPack', workflowIds.platform('wp'), { platform, group: group() });
    const onMaster = await fleet().bed.exec('h1', ['test', '-f', '/var/aegir/platforms/wp/wp-login.php'], {
      check: false,
    });
    assert.equal(onMaster.code, 0, 'the master has the code');
    for (const slave of ['h2', 'h3']) {
      // Through the mount the slave sees the master's file; unmounted, its own disk has no platform at all.
      const seen = await fleet().bed.exec(slave, ['test', '-f', '/var/aegir/platforms/wp/wp-login.php'], {
        check: false,
      });
      assert.equal(seen.code, 0, `${slave} sees the code through the share`);
      const own = await fleet().bed.exec(slave, [
        'sh',
        '-c',
        'ls /proc/1/root/var/aegir/platforms >/dev/null; grep -c " /var/aegir/platforms " /proc/self/mountinfo',
      ]);
      assert.equal(own.stdout.trim(), '1', `${slave}: the platforms dir is the share mount`);
    }
  });

  test('InstallSiteOnPack: every member answers the site with WordPress', async () => {
    const result = await fleet().run<InstallSiteResult>('InstallSiteOnPack', workflowIds.site(site.domain), {
      site,
      platform,
      group: group(),
      dbServer: fleet().server('h4'),
    });
    assert.deepEqual(
      result.members.map((m) => m.status),
      [200, 200, 200],
    );
    for (const host of ['h1', 'h2', 'h3']) {
      const rest = await fleet().bed.httpGet(host, '/?rest_route=/', { headers: { Host: site.domain } });
      assert.equal(rest.status, 200);
      assert.equal((JSON.parse(rest.body) as { name: string }).name, site.domain, `${host} serves the site`);
    }
  });

  test('VerifyClusterNodes is green; an unmounted share is reported on that slave only; ResyncCluster remounts it', async () => {
    const green = await fleet().run<VerifyReport>(
      'VerifyClusterNodes',
      workflowIds.verify('pack', 'p1'),
      verifyInput(),
    );
    assert.equal(green.ok, true, JSON.stringify(green.nodes.map((n) => [n.server, n.checks.filter((c) => !c.ok)])));

    await fleet().bed.exec('h3', ['fusermount', '-u', '/var/aegir/platforms']);
    const red = await fleet().run<VerifyReport>('VerifyClusterNodes', workflowIds.verify('pack', 'p1'), verifyInput());
    const failing = red.nodes.flatMap((n) => n.checks.filter((c) => !c.ok).map((c) => `${n.server}:${c.name}`));
    assert.ok(failing.length > 0 && failing.every((f) => f.startsWith('h3:')), `only h3 fails (${failing.join(', ')})`);
    assert.ok(failing.includes('h3:share-mount'), `h3 share-mount reported (${failing.join(', ')})`);

    const resync = await fleet().run<ResyncReport>('ResyncCluster', workflowIds.resync('pack', 'p1'), verifyInput());
    assert.ok(resync.nodes.find((n) => n.server === 'h3')?.repaired.includes('share mount'));
    const again = await fleet().run<VerifyReport>(
      'VerifyClusterNodes',
      workflowIds.verify('pack', 'p1'),
      verifyInput(),
    );
    assert.equal(again.ok, true, JSON.stringify(again.nodes.map((n) => [n.server, n.checks.filter((c) => !c.ok)])));
  });

  test('SetupPackShare refuses a slave whose aegir uid/gid differs, and changes nothing', async () => {
    const odd = packGroup(
      'p2',
      ['h1', 'h5'].map((n) => fleet().server(n)),
      fleet().bed.facts.subnet,
    );
    const fstabBefore = await fleet().bed.readFile('h5', '/etc/fstab');
    await assert.rejects(
      fleet().run('SetupPackShare', workflowIds.pack('p2'), { pack: odd }),
      (err: unknown) => err instanceof WorkflowFailedError && /uid:gid differs/.test(String(err.cause?.message)),
    );
    assert.equal(await fleet().bed.readFile('h5', '/etc/fstab'), fstabBefore);
    const exports = await fleet().bed.readFile('h1', '/etc/ganesha/ganesha.conf');
    assert.equal(exports.match(/^EXPORT\s*\{/gm)?.length, 1, 'still one EXPORT block');
    assert.doesNotMatch(exports, /sitefleet:pack:p2/, 'no export for the refused pack');
  });
});
