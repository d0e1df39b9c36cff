/**
 * End to end on test hosts: a 3-member cluster whose uploads live on a share of a files server (h4's nfs-ganesha
 * exports it; this kernel has no NFS client, so the members mount it with sshfs). A PHP endpoint writes an upload
 * through h1; h3 serves it. A resync that changes and deletes code leaves it in place. Deleting a site and
 * tearing the share down delete no uploads; a member without the mount is refused, never given a local directory,
 * and verification names it.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, unlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import type { Platform, Site } from '../../domain/model';
import { workflowIds, type WebGroup } from '../../domain/operations';
import { ensureSiteDir } from '../../activities/site-files';
import type { ClusterUploadsResult, ClusterUploadsTeardownResult } from '../../workflows/cluster-uploads';
import type { ResyncReport, VerifyReport } from '../../workflows/verify';
import { clusterGroup, useFleet } from '../support/fleet';

const fleet = useFleet({
  hosts: [{ roles: ['web-nginx'] }, { roles: ['web-nginx'] }, { roles: ['web-nginx'] }, { roles: ['db', 'nfs'] }],
});

// Under /var/aegir: private to the test host (TESTBED-NOTES), gone with the bed.
const EXPORT = '/var/aegir/uploads/c1';
const MEMBERS = ['h1', 'h2', 'h3'];

// A minimal PHP platform: a page that names its release, and an upload endpoint that writes into the site's files/.
const source = mkdtempSync(join(tmpdir(), 'sitefleet-uploads-'));
after(() => rmSync(source, { recursive: true, force: true }));
writeFileSync(join(source, 'index.php'), '<?php echo "release 1\\n";\n');
writeFileSync(join(source, 'old.txt'), 'removed by the next release\n');
writeFileSync(
  join(source, 'upload.php'),
  `<?php
$host = $_SERVER['HTTP_HOST'] ?? '';
$name = $_GET['name'] ?? '';
if (!preg_match('/^[a-z0-9.-]+$/', $host) || !preg_match('/^[a-z0-9-]+\\.txt$/', $name)) { http_response_code(400); exit; }
$path = __DIR__ . "/sites/$host/files/$name";
if (file_put_contents($path, $_GET['data'] ?? '') === false) { http_response_code(500); exit("cannot write $path: " . (error_get_last()['message'] ?? '?') . "\\n"); }
echo "wrote $path as " . posix_getpwuid(posix_geteuid())['name'] . "\\n";
`,
);

const platform: Platform = {
  name: 'up',
  target: { kind: 'cluster', name: 'c1' },
  source: { type: 'path', path: source },
  profile: 'php',
};
const site = (domain: string): Site => ({
  domain,
  aliases: [],
  platform: 'up',
  dbServer: 'h4',
  https: false,
  status: 'enabled',
});
const A = site('a.example.com');
const B = site('b.example.com');

describe('shared uploads on a cluster', () => {
  const group = (): WebGroup =>
    clusterGroup(
      'c1',
      MEMBERS.map((n) => fleet().server(n)),
      {
        uploads: {
          server: fleet().server('h4'),
          exportPath: EXPORT,
          clients: fleet().bed.facts.subnet,
          clientFlavour: 'sshfs',
        },
      },
    );
  const get = (host: string, domain: string, path: string) =>
    fleet().bed.httpGet(host, path, { headers: { Host: domain } });
  const install = (s: Site) =>
    fleet().run('InstallSiteOnCluster', workflowIds.site(s.domain), {
      site: s,
      platform,
      group: group(),
      dbServer: fleet().server('h4'),
    });

  test('SetupClusterUploads mounts the share on every member; a site install links files/ into it', async () => {
    const setup = await fleet().run<ClusterUploadsResult>('SetupClusterUploads', workflowIds.cluster('c1'), {
      cluster: group(),
    });
    assert.deepEqual(setup.readable, MEMBERS, 'every member reads a fresh marker through its mount');
    for (const host of MEMBERS) {
      const mount = await fleet().bed.exec(host, [
        'findmnt',
        '-n',
        '-o',
        'FSTYPE',
        '--mountpoint',
        '/var/aegir/shared/c1',
      ]);
      assert.equal(mount.stdout.trim(), 'fuse.sshfs', `${host} mounts the uploads share`);
    }
    await fleet().run('CreatePlatformOnCluster', workflowIds.platform('up'), { platform, group: group() });
    await install(A);
    await install(B);
    for (const host of MEMBERS) {
      for (const sub of ['files', 'private']) {
        const link = await fleet().bed.exec(host, ['readlink', `/var/aegir/platforms/up/sites/a.example.com/${sub}`]);
        assert.equal(link.stdout.trim(), `/var/aegir/shared/c1/a.example.com/${sub}`, `${host}: ${sub} is a link`);
      }
    }
  });

  test('an upload through h1 is served through h3, and a resync with a code change keeps it', async () => {
    const up = await get('h1', A.domain, '/upload.php?name=photo-1.txt&data=uploaded-through-h1');
    assert.equal(up.status, 200, up.body);
    await get('h2', B.domain, '/upload.php?name=b-photo.txt&data=uploaded-to-b');
    const served = await get('h3', A.domain, '/sites/a.example.com/files/photo-1.txt');
    assert.deepEqual([served.status, served.body], [200, 'uploaded-through-h1']);
    // On the files server, written by the aegir user (php-fpm's writes land as the share's user), in the web group.
    const onServer = await fleet().bed.exec('h4', ['stat', '-c', '%U:%G', `${EXPORT}/a.example.com/files/photo-1.txt`]);
    assert.equal(onServer.stdout.trim(), 'aegir:www-data');
    // Nothing under the release: the members' platform trees hold no upload.
    for (const host of MEMBERS) {
      const local = await fleet().bed.exec(host, ['find', '/var/aegir/platforms/up', '-name', 'photo-1.txt']);
      assert.equal(local.stdout.trim(), '', `${host} keeps no local copy`);
    }

    // The next release changes a file and deletes another: rsync --delete runs on every member.
    writeFileSync(join(source, 'index.php'), '<?php echo "release 2\\n";\n');
    unlinkSync(join(source, 'old.txt'));
    const resync = await fleet().run<ResyncReport>('ResyncCluster', workflowIds.resync('cluster', 'c1'), {
      group: group(),
      platforms: [platform],
      sites: [A, B],
      dbServers: [fleet().server('h4')],
    });
    assert.ok(resync.ok, JSON.stringify(resync.nodes));
    for (const host of MEMBERS) {
      assert.equal((await get(host, A.domain, '/')).body, 'release 2\n', `${host} runs the new release`);
      const old = await fleet().bed.exec(host, ['test', '-e', '/var/aegir/platforms/up/old.txt'], { check: false });
      assert.notEqual(old.code, 0, `${host}: the file the release deleted is gone`);
      const kept = await get(host, A.domain, '/sites/a.example.com/files/photo-1.txt');
      assert.deepEqual([kept.status, kept.body], [200, 'uploaded-through-h1'], `${host} still serves the upload`);
    }
    // Through h3, a new upload and a rewrite of the one h1 wrote: php-fpm may write what any member wrote.
    assert.equal((await get('h3', A.domain, '/upload.php?name=photo-3.txt&data=through-h3')).status, 200);
    assert.equal((await get('h1', A.domain, '/sites/a.example.com/files/photo-3.txt')).body, 'through-h3');
    const rewrite = await get('h3', B.domain, '/upload.php?name=b-photo.txt&data=rewritten-through-h3');
    assert.equal(rewrite.status, 200, rewrite.body);
    assert.equal((await get('h1', B.domain, '/sites/b.example.com/files/b-photo.txt')).body, 'rewritten-through-h3');
  });

  test('VerifyClusterNodes reads the uploads share through each member: an unmounted member is named, resync mounts it again', async () => {
    const verify = async (label: string) => {
      const report = await fleet().run<VerifyReport>('VerifyClusterNodes', `verify/cluster/c1-uploads-${label}`, {
        group: group(),
        platforms: [platform],
        sites: [A, B],
        dbServers: [fleet().server('h4')],
      });
      return report.nodes.map((n) => {
        const c = n.checks.find((x) => x.name === 'uploads-mount');
        return `${n.server} ${String(c?.ok)}${c?.ok ? '' : ` ${c?.detail}`}`;
      });
    };
    assert.deepEqual(await verify('green'), ['h1 true', 'h2 true', 'h3 true']);
    await fleet().bed.exec('h2', ['umount', '/var/aegir/shared/c1']);
    const [h1, h2, h3] = await verify('unmounted');
    assert.deepEqual([h1, h3], ['h1 true', 'h3 true']);
    assert.match(String(h2), /^h2 false mounted: false/);
    const resync = await fleet().run<ResyncReport>('ResyncCluster', workflowIds.resync('cluster', 'c1'), {
      group: group(),
      platforms: [platform],
      sites: [A, B],
      dbServers: [fleet().server('h4')],
    });
    assert.ok(resync.nodes.find((n) => n.server === 'h2')?.repaired.includes('uploads mount'), JSON.stringify(resync));
    assert.deepEqual(await verify('repaired'), ['h1 true', 'h2 true', 'h3 true']);
    assert.equal((await get('h2', A.domain, '/sites/a.example.com/files/photo-1.txt')).body, 'uploaded-through-h1');
  });

  test("deleting a site and tearing the share down delete no other site's uploads", async () => {
    await fleet().run('DeleteSite', workflowIds.site(B.domain), {
      site: B,
      platform,
      group: group(),
      dbServer: fleet().server('h4'),
    });
    assert.equal((await get('h2', A.domain, '/sites/a.example.com/files/photo-1.txt')).body, 'uploaded-through-h1');
    const teardown = await fleet().run<ClusterUploadsTeardownResult>(
      'TeardownClusterUploads',
      workflowIds.cluster('c1'),
      { cluster: group(), sites: [A.domain], force: true },
    );
    assert.deepEqual(teardown.unmountedFrom, MEMBERS);
    const left = await fleet().bed.exec('h4', ['sh', '-c', `cd ${EXPORT} && find . -type f | sort`]);
    assert.deepEqual(left.stdout.trim().split('\n'), [
      './a.example.com/files/photo-1.txt',
      './a.example.com/files/photo-3.txt',
      './b.example.com/files/b-photo.txt',
    ]);
    // Without the mount, a site directory is refused rather than given local uploads.
    await assert.rejects(
      ensureSiteDir({
        server: fleet().server('h2'),
        site: A,
        platform,
        dbServer: fleet().server('h4'),
        uploads: { root: '/var/aegir/shared/c1', mounted: true },
      }),
      /uploads share is not mounted at \/var\/aegir\/shared\/c1/,
    );
    const link = await fleet().bed.exec('h2', ['readlink', '/var/aegir/platforms/up/sites/a.example.com/files']);
    assert.equal(link.stdout.trim(), '/var/aegir/shared/c1/a.example.com/files', 'h2 was left as it was');
  });
});
