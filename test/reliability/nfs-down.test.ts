/**
 * Reliability: the NFS server of a pack (nfs-ganesha on the master, exporting /var/aegir/platforms) goes down and
 * comes back. While it is down, VerifyClusterNodes must flag every slave; once it is back, a resync brings every
 * node in line and no file is lost — neither an upload made before the outage nor one made through a slave during
 * it. The slaves mount with sshfs (this kernel has no NFS client); the export is read with libnfs (`nfs-ls`,
 * `nfs-cat`) over the real NFS protocol, as SetupPackShare's checkNfsExport does.
 */
import assert from 'node:assert/strict';
import { before, describe, test } from 'node:test';
import type { Platform, Server, Site } from '../../domain/model';
import { workflowIds, type WebGroup } from '../../domain/operations';
import type { VerifyReport, ResyncReport } from '../../workflows/verify';
import { useFleet } from '../support/fleet';
import { manifestDiff, platformManifest, sourceManifest } from '../support/reliability';

const fleet = useFleet({
  hosts: [{ roles: ['web-nginx', 'nfs'] }, { roles: ['web-nginx'] }, { roles: ['web-nginx'] }, { roles: ['db'] }],
});

const SLAVES = ['h2', 'h3'];
const SOURCE = '/usr/share/wordpress';
const platform: Platform = {
  name: 'wp',
  target: { kind: 'pack', name: 'p1' },
  source: { type: 'path', path: SOURCE },
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
const FILES = `/var/aegir/platforms/wp/sites/${site.domain}/files`;
const UPLOADS = {
  'before.txt': 'uploaded before the outage\n',
  'during.txt': 'uploaded through h2 during the outage\n',
};

describe('the NFS server of a pack goes down and comes back', () => {
  const group = (): WebGroup => {
    const members = ['h1', 'h2', 'h3'].map((n) => fleet().server(n));
    const master = members[0] as Server;
    return {
      kind: 'pack',
      name: 'p1',
      members,
      codeReceivers: [master.name],
      share: {
        server: master,
        exportPath: '/var/aegir/platforms',
        clients: fleet().bed.facts.subnet,
        clientFlavour: 'sshfs',
      },
    };
  };
  const nodesInput = () => ({
    group: group(),
    platforms: [platform],
    sites: [site],
    dbServers: [fleet().server('h4')],
  });
  const failingChecks = (report: VerifyReport) =>
    report.nodes.flatMap((n) => n.checks.filter((c) => !c.ok).map((c) => `${n.server}:${c.name}: ${c.detail}`));
  const nfsUrl = (path: string) => `nfs://${fleet().bed.ip('h1')}${path}`;

  before(async () => {
    await fleet().run('SetupPackShare', workflowIds.pack('p1'), { pack: group() });
    await fleet().run('CreatePlatformOnPack', workflowIds.platform('wp'), { platform, group: group() });
    await fleet().run('InstallSiteOnPack', workflowIds.site(site.domain), {
      site,
      platform,
      group: group(),
      dbServer: fleet().server('h4'),
    });
    await fleet().bed.writeFile('h1', `${FILES}/before.txt`, UPLOADS['before.txt'], { user: 'aegir' });
    const green = await fleet().run<VerifyReport>('VerifyClusterNodes', workflowIds.verify('pack', 'p1'), nodesInput());
    assert.deepEqual(failingChecks(green), [], 'the pack is green before the outage');
  });

  test('while nfs-ganesha is down, VerifyClusterNodes flags every slave', async (t) => {
    await fleet().bed.stopService('h1', 'nfs-ganesha');
    for (const slave of SLAVES) {
      const nfs = await fleet().bed.exec(slave, ['nfs-ls', nfsUrl('/var/aegir/platforms')], { check: false });
      assert.notEqual(nfs.code, 0, `${slave} cannot read the export while ganesha is down`);
    }
    const report = await fleet().run<VerifyReport>(
      'VerifyClusterNodes',
      workflowIds.verify('pack', 'p1'),
      nodesInput(),
    );
    const failing = failingChecks(report);
    t.diagnostic(`findings while down: ${failing.join(' | ') || 'none'}`);
    assert.equal(report.ok, false, 'the outage is reported');
    assert.deepEqual(
      failing.map((f) => f.split(': ')[0]).sort(),
      SLAVES.map((s) => `${s}:nfs-export`),
      'every slave, and only its NFS check, is flagged',
    );
  });

  test('when nfs-ganesha is back, a resync brings every node in line and no file is lost', async () => {
    if ((await fleet().bed.exec('h1', ['nfs-ls', nfsUrl('/var/aegir/platforms')], { check: false })).code === 0) {
      await fleet().bed.stopService('h1', 'nfs-ganesha');
    }
    // An upload through a slave while the NFS server is down.
    await fleet().bed.writeFile('h2', `${FILES}/during.txt`, UPLOADS['during.txt'], { user: 'aegir' });
    await fleet().bed.startService('h1', 'nfs-ganesha');

    const resync = await fleet().run<ResyncReport>('ResyncCluster', workflowIds.resync('pack', 'p1'), nodesInput());
    assert.equal(resync.ok, true, JSON.stringify(resync.nodes));
    const report = await fleet().run<VerifyReport>(
      'VerifyClusterNodes',
      workflowIds.verify('pack', 'p1'),
      nodesInput(),
    );
    assert.deepEqual(failingChecks(report), []);

    const [uid, gid] = (await fleet().bed.exec('h1', ['sh', '-c', 'id -u aegir; id -g aegir'])).stdout.split('\n');
    for (const [name, content] of Object.entries(UPLOADS)) {
      assert.equal(await fleet().bed.readFile('h1', `${FILES}/${name}`), content, `${name} is on the master`);
      for (const slave of SLAVES) {
        assert.equal(await fleet().bed.readFile(slave, `${FILES}/${name}`), content, `${slave} sees ${name}`);
        // files/ is aegir's (2770) and the export squashes root: read it as aegir, over NFS.
        const overNfs = await fleet().bed.exec(slave, [
          'nfs-cat',
          `${nfsUrl(`${FILES}/${name}`)}?uid=${uid}&gid=${gid}`,
        ]);
        assert.equal(overNfs.stdout, content, `${slave} reads ${name} over NFS`);
      }
    }
    const diff = manifestDiff(
      await sourceManifest(SOURCE),
      await platformManifest(fleet().bed, 'h1', '/var/aegir/platforms/wp'),
    );
    assert.deepEqual(diff, { missing: [], extra: [] }, 'the master has exactly the source tree');
    const ganesha = await fleet().bed.readFile('h1', '/etc/ganesha/ganesha.conf');
    assert.equal(ganesha.match(/^EXPORT\s*\{/gm)?.length, 1, 'one export of the pack');
    for (const slave of SLAVES) {
      const fstab = await fleet().bed.readFile(slave, '/etc/fstab');
      assert.equal(fstab.split('\n').filter((l) => l.includes('fuse.sshfs')).length, 1, `${slave}: one fstab line`);
      const rest = await fleet().bed.httpGet(slave, '/?rest_route=/', { headers: { Host: site.domain } });
      assert.equal((JSON.parse(rest.body) as { name: string }).name, site.domain, `${slave} serves the site`);
    }
  });
});
