/**
 * End to end on VM test hosts (QEMU guests with Debian's kernel: real nfsd, real NFS client): a pack whose master
 * exports the platforms with the kernel flavour (/etc/exports + exportfs -ra) and whose slave mounts them through a
 * managed /etc/fstab line. WordPress through every member; the slave rebooted mounts the share again from fstab
 * by itself; nfsd stopped on the master shows up exactly as the slave's share checks; uid/gid parity.
 * Software emulation (TCG) makes these hosts slow to boot: two guests, one bed, every step reused.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { release } from 'node:os';
import { describe, test } from 'node:test';
import { promisify } from 'node:util';
import { WorkflowFailedError } from '@temporalio/client';
import { checkNfsExport } from '../../activities/nfs-export';
import type { Platform, Server, Site } from '../../domain/model';
import { workflowIds, type WebGroup } from '../../domain/operations';
import type { InstallSiteResult } from '../../workflows/site';
import type { PackShareResult } from '../../workflows/pack-share';
import type { VerifyReport } from '../../workflows/verify';
import { readState } from '../../testbed/state';
import { useFleet } from '../support/fleet';

const fleet = useFleet({
  hosts: [
    { roles: ['web-nginx', 'nfs-kernel'], vm: true },
    { roles: ['web-nginx'], vm: true },
    { roles: ['db'] },
    // A namespace host with another aegir uid: refused before anything is mounted on it.
    { roles: ['web-nginx'], aegirUid: 1600 },
    // A namespace host with equal ids but no kernel NFS client (this machine's kernel has none): its mount fails
    // after the master exported, so the setup's undo runs.
    { roles: ['web-nginx'] },
  ],
});

const platform: Platform = {
  name: 'wpk',
  target: { kind: 'pack', name: 'pk' },
  source: { type: 'path', path: '/usr/share/wordpress' },
  profile: 'wordpress',
};
const site: Site = {
  domain: 'kernel-nfs.example.com',
  aliases: [],
  platform: 'wpk',
  dbServer: 'h3',
  https: false,
  status: 'enabled',
};
const PLATFORMS = '/var/aegir/platforms';
const execFileAsync = promisify(execFile);

function packGroup(name: string, members: Server[], subnet: string): WebGroup {
  const master = members[0] as Server;
  return {
    kind: 'pack',
    name,
    members,
    codeReceivers: [master.name],
    share: { server: master, exportPath: PLATFORMS, clients: subnet, clientFlavour: 'kernel' },
  };
}

const failingChecks = (report: VerifyReport): string[] =>
  report.nodes.flatMap((n) => n.checks.filter((c) => !c.ok).map((c) => `${n.server}:${c.name}`)).sort();

describe('kernel NFS pack on VM hosts', () => {
  const group = () =>
    packGroup(
      'pk',
      ['h1', 'h2'].map((n) => fleet().server(n)),
      fleet().bed.facts.subnet,
    );
  const verifyInput = () => ({
    group: group(),
    platforms: [platform],
    sites: [site],
    dbServers: [fleet().server('h3')],
  });
  const verify = () => fleet().run<VerifyReport>('VerifyClusterNodes', workflowIds.verify('pack', 'pk'), verifyInput());
  const mountType = async (host: string): Promise<string> =>
    (
      await fleet().bed.exec(host, ['findmnt', '-n', '-o', 'FSTYPE', '--mountpoint', PLATFORMS], { check: false })
    ).stdout.trim();

  test("the bed runs VM hosts: the guest's own kernel, sshd with its pinned key, aegir with its ids", async (t) => {
    const bed = fleet().bed;
    const guestKernel = (await bed.exec('h1', ['uname', '-r'])).stdout.trim();
    assert.match(guestKernel, /-amd64$/, 'a Debian kernel runs in the guest');
    assert.notEqual(guestKernel, release(), "not this machine's kernel");
    assert.match((await bed.exec('h1', ['cat', '/proc/filesystems'])).stdout, /\bnfsd\b/, 'the guest has nfsd');
    assert.equal((await bed.exec('h2', ['id', '-u', 'aegir'])).stdout.trim(), '1500');
    // The real ssh client with the bed's known_hosts (StrictHostKeyChecking=yes) reaches the guest's sshd.
    const ssh = await execFileAsync('ssh', [...bed.sshArgs('h2', { user: 'aegir' }), 'id', '-u']);
    assert.equal(ssh.stdout.trim(), '1500');
    const state = await readState(bed.paths);
    const memory = await bed.memoryUsage();
    for (const host of ['h1', 'h2']) {
      const runtime = state?.hosts[host];
      t.diagnostic(`${host} boot ${runtime?.bootMs ?? '?'} ms in ${runtime?.bootAttempts ?? '?'} attempt(s)`);
    }
    t.diagnostic(`bed memory: PSS ${Math.round(memory.pssBytes / 2 ** 20)} MB in ${memory.processes} processes`);
  });

  test('SetupPackShare (kernel flavour): a managed /etc/exports block, exportfs, an fstab line and an NFS mount', async () => {
    const first = await fleet().run<PackShareResult>('SetupPackShare', workflowIds.pack('pk'), { pack: group() });
    assert.deepEqual(first.mountedOn, ['h2']);
    await fleet().run<PackShareResult>('SetupPackShare', workflowIds.pack('pk'), { pack: group() });
    const exports = await fleet().bed.readFile('h1', '/etc/exports');
    const lines = exports.split('\n').filter((l) => l.startsWith(`${PLATFORMS} `));
    assert.deepEqual(
      lines,
      [`${PLATFORMS} ${fleet().bed.ip('h2')}(rw,sync,no_subtree_check)`],
      `one export line after two runs, naming only the slave:\n${exports}`,
    );
    assert.match(exports, /sitefleet:pack:pk/, "the line sits in the pack's managed block");
    const live = (await fleet().bed.exec('h1', ['exportfs', '-v'])).stdout;
    assert.match(live, new RegExp(`${PLATFORMS}\\s+${fleet().bed.ip('h2').replace(/\./g, '\\.')}\\(`), live);
    // A host on the same network that is not a slave is refused by the master's nfsd (read over NFS with libnfs).
    const share = group().share!;
    assert.equal((await checkNfsExport({ server: fleet().server('h2'), share })).ok, true);
    const outsider = await checkNfsExport({ server: fleet().server('h5'), share });
    assert.equal(outsider.ok, false, `h5 is not a slave: ${outsider.detail}`);
    const fstab = await fleet().bed.readFile('h2', '/etc/fstab');
    const nfsLines = fstab.split('\n').filter((l) => / nfs4? /.test(l));
    assert.equal(nfsLines.length, 1, `one fstab line:\n${fstab}`);
    // Options that never hold a boot: in the background, after the network, optional, with a systemd timeout.
    for (const option of ['_netdev', 'nofail', 'bg', 'timeo=150', 'x-systemd.mount-timeout=30s']) {
      assert.ok((nfsLines[0] ?? '').split(/\s+/)[3]?.split(',').includes(option), `${option} in ${nfsLines[0]}`);
    }
    assert.match(await mountType('h2'), /^nfs4?$/, 'h2 mounts the share with the kernel client');
  });

  test('files written through the share keep their owner (real NFS, equal ids)', async () => {
    await fleet().bed.exec('h2', ['touch', `${PLATFORMS}/.owned-by-aegir`], { user: 'aegir' });
    const onMaster = await fleet().bed.exec('h1', ['stat', '-c', '%u:%g', `${PLATFORMS}/.owned-by-aegir`]);
    assert.equal(onMaster.stdout.trim(), '1500:1500', 'written on the slave, owned by aegir on the master');
    await fleet().bed.exec('h1', ['rm', '-f', `${PLATFORMS}/.owned-by-aegir`]);
  });

  test('CreatePlatformOnPack and InstallSiteOnPack: WordPress through every member', async () => {
    await fleet().run('CreatePlatformOnPack', workflowIds.platform('wpk'), { platform, group: group() });
    const seen = await fleet().bed.exec('h2', ['stat', '-c', '%u', `${PLATFORMS}/wpk/wp-login.php`]);
    assert.equal(seen.stdout.trim(), '1500', 'the slave reads the code through the share, owned by aegir');
    // Under software emulation on a loaded machine, WordPress's first render on the slave reads ~150 PHP files over
    // NFS at 2-4 ms a round trip and compiles them, which can outlast the install's probe (10 s, 4 tries). Reading
    // the PHP files once first, as a busy server would have, keeps this test about NFS and not about TCG speed.
    await fleet().bed.exec(
      'h2',
      ['sh', '-c', 'find "$1" -type f -name "*.php" -exec cat {} + >/dev/null', 'sh', `${PLATFORMS}/wpk`],
      {
        timeoutMs: 180_000,
      },
    );
    const result = await fleet().run<InstallSiteResult>('InstallSiteOnPack', workflowIds.site(site.domain), {
      site,
      platform,
      group: group(),
      dbServer: fleet().server('h3'),
    });
    assert.deepEqual(
      result.members.map((m) => m.status),
      [200, 200],
    );
    for (const host of ['h1', 'h2']) {
      const rest = await fleet().bed.httpGet(host, '/?rest_route=/', {
        headers: { Host: site.domain },
        timeoutMs: 60_000,
      });
      assert.equal(rest.status, 200);
      assert.equal((JSON.parse(rest.body) as { name: string }).name, site.domain, `${host} serves the site`);
    }
    const green = await verify();
    assert.deepEqual(failingChecks(green), [], 'verify is green');
  });

  test('a rebooted slave mounts the share again from fstab; verify is green with no action by sitefleet', async (t) => {
    const started = performance.now();
    await fleet().bed.reboot('h2');
    t.diagnostic(`h2 reboot (shutdown, new QEMU, sshd, services) ${Math.round(performance.now() - started)} ms`);
    for (let i = 0; i < 60 && !/^nfs4?$/.test(await mountType('h2')); i++) {
      await new Promise((r) => setTimeout(r, 1000));
    }
    assert.match(await mountType('h2'), /^nfs4?$/, 'the guest mounted its fstab line at boot');
    const green = await verify();
    assert.deepEqual(failingChecks(green), [], 'verify is green after the reboot');
  });

  test("nfsd stopped on the master: verify names exactly the slave's share checks", async (t) => {
    await fleet().bed.stopService('h1', 'nfs-kernel-server');
    try {
      const red = await verify();
      const failing = failingChecks(red);
      t.diagnostic(`failing with nfsd stopped: ${failing.join(', ')}`);
      assert.ok(failing.length > 0, 'something fails');
      assert.ok(
        failing.every((f) => f.startsWith('h2:')),
        `only the slave fails: ${failing.join(', ')}`,
      );
      assert.ok(
        failing.every((f) => /^h2:(share-mount|nfs-export|visible:wpk|drift:wpk|probe:|health)/.test(f)),
        `only share checks fail: ${failing.join(', ')}`,
      );
      assert.ok(failing.includes('h2:nfs-export') || failing.includes('h2:share-mount'), failing.join(', '));
    } finally {
      await fleet().bed.startService('h1', 'nfs-kernel-server');
    }
  });

  test('a failed step is undone: exports on the master and fstab on the slave are exactly as before', async () => {
    // h5 has equal ids, so the setup exports to it and then fails at its mount (no kernel NFS client there).
    const failing = packGroup(
      'pk3',
      ['h1', 'h5'].map((n) => fleet().server(n)),
      fleet().bed.facts.subnet,
    );
    const exportsBefore = await fleet().bed.readFile('h1', '/etc/exports');
    const liveBefore = (await fleet().bed.exec('h1', ['exportfs', '-v'])).stdout;
    const fstabBefore = await fleet().bed.readFile('h5', '/etc/fstab');
    await assert.rejects(
      fleet().run('SetupPackShare', workflowIds.pack('pk3'), { pack: failing }),
      (err: unknown) =>
        err instanceof WorkflowFailedError &&
        /mount on every slave/.test(String(err.cause?.message)) &&
        /h5 cannot mount NFS/.test(String(err.cause?.message)),
    );
    assert.equal(await fleet().bed.readFile('h1', '/etc/exports'), exportsBefore, 'exports exactly as before');
    assert.equal((await fleet().bed.exec('h1', ['exportfs', '-v'])).stdout, liveBefore, 'live exports as before');
    assert.equal(await fleet().bed.readFile('h5', '/etc/fstab'), fstabBefore, 'fstab exactly as before');
    assert.match(await mountType('h2'), /^nfs4?$/, "pk's share on h2 is untouched");
  });

  test('SetupPackShare refuses a slave whose aegir uid/gid differs, naming both, and changes nothing', async () => {
    const odd = packGroup(
      'pk2',
      ['h1', 'h4'].map((n) => fleet().server(n)),
      fleet().bed.facts.subnet,
    );
    const exportsBefore = await fleet().bed.readFile('h1', '/etc/exports');
    const fstabBefore = await fleet().bed.readFile('h4', '/etc/fstab');
    await assert.rejects(
      fleet().run('SetupPackShare', workflowIds.pack('pk2'), { pack: odd }),
      (err: unknown) =>
        err instanceof WorkflowFailedError &&
        /uid:gid differs/.test(String(err.cause?.message)) &&
        /1500/.test(String(err.cause?.message)) &&
        /1600/.test(String(err.cause?.message)),
    );
    assert.equal(await fleet().bed.readFile('h1', '/etc/exports'), exportsBefore, 'exports exactly as before');
    assert.equal(await fleet().bed.readFile('h4', '/etc/fstab'), fstabBefore, 'fstab exactly as before');
  });
});
