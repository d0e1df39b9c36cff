import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { checkSentinel, writeSentinel } from '../../activities/checks';
import { readManagedBlock } from '../../activities/transport/managed-block';
import { checkNfsExport, ensureExport, inspectExport, removeExport } from '../../activities/nfs-export';
import { ensureShareMount, inspectShareMount, removeShareMount } from '../../activities/nfs-mount';
import { GANESHA_CONFIG_FILE } from '../../activities/nfs-share';
import { renderFstabSshfs } from '../../activities/render';
import type { PackShare } from '../../domain/operations';
import { useTestBed } from '../support/testbed';
import { failure, serverOf, useWorkerEnvironment } from './bed-servers';

useWorkerEnvironment();
// h1: the pack's master and NFS server (nfs-ganesha); h2 mounts with sshfs; h3 tries kernel NFS, which this machine lacks.
const bed = useTestBed({
  hosts: [{ roles: ['web-nginx', 'nfs'] }, { roles: ['web-nginx'] }, { roles: ['web-nginx'] }],
});
const packName = 'alpha';
const MARKER = 'sitefleet:pack:alpha';

function share(clientFlavour: 'kernel' | 'sshfs'): PackShare {
  return {
    server: serverOf(bed(), 'h1'),
    exportPath: '/var/aegir/platforms',
    clients: bed().plan.subnet,
    clientFlavour,
  };
}

async function sh(host: string, script: string, check = true) {
  return bed().exec(host, ['sh', '-c', script], { check });
}

async function countBlocks(host: string, file: string): Promise<number> {
  return Number((await sh(host, `grep -c '^# BEGIN ${MARKER}$' ${file} || true`)).stdout.trim());
}

describe('the pack share: nfs-ganesha export', () => {
  test('exports the platforms once, with a managed block, readable over NFS from a slave', async () => {
    const h2 = serverOf(bed(), 'h2');
    assert.equal((await inspectExport({ share: share('sshfs'), packName })).present, false);
    const result = await ensureExport({ share: share('sshfs'), packName });
    assert.deepEqual(result, { server: 'h1', flavour: 'ganesha', present: true, changed: true });
    await writeSentinel({ server: serverOf(bed(), 'h1'), dir: '/var/aegir/platforms', token: 'first-token' });
    const read = await checkNfsExport({ server: h2, share: share('sshfs') });
    assert.equal(read.ok, true, read.detail);
    assert.equal(
      (await sh('h2', `nfs-cat nfs://${bed().ip('h1')}/var/aegir/platforms/.sitefleet-sentinel`)).stdout,
      'first-token\n',
    );
  });

  test('running it again finds the same state; exporting to named slaves only updates the block in place', async () => {
    assert.equal((await ensureExport({ share: share('sshfs'), packName })).changed, false);
    assert.equal(await countBlocks('h1', GANESHA_CONFIG_FILE), 1);
    const before = readManagedBlock(await bed().readFile('h1', GANESHA_CONFIG_FILE), MARKER) ?? '';
    // SetupPackShare names the pack's slaves: h3, on the same subnet but not a slave, may no longer mount.
    const onlyH2 = { share: share('sshfs'), packName, slaveAddresses: [bed().ip('h2')] };
    assert.equal((await ensureExport(onlyH2)).changed, true);
    const after = readManagedBlock(await bed().readFile('h1', GANESHA_CONFIG_FILE), MARKER) ?? '';
    assert.equal(/Export_Id = (\d+)/.exec(after)?.[1], /Export_Id = (\d+)/.exec(before)?.[1], 'same Export_Id');
    assert.match(after, new RegExp(`Clients = ${bed().ip('h2')};`));
    assert.equal((await checkNfsExport({ server: serverOf(bed(), 'h2'), share: share('sshfs') })).ok, true);
    assert.equal(
      (await checkNfsExport({ server: serverOf(bed(), 'h3'), share: share('sshfs') })).ok,
      false,
      'h3 is no longer a client',
    );
    await ensureExport({ share: share('sshfs'), packName });
  });
});

describe('the pack share: sshfs mount on a slave', () => {
  test("mounts the master's platforms through a managed fstab line, with a per-pack key and the pinned host key", async () => {
    const h2 = serverOf(bed(), 'h2');
    const result = await ensureShareMount({ slave: h2, share: share('sshfs'), packName });
    const source = `aegir@${bed().ip('h1')}:/var/aegir/platforms`;
    assert.deepEqual(result, {
      server: 'h2',
      flavour: 'sshfs',
      mountPoint: '/var/aegir/platforms',
      mounted: true,
      fstab: true,
      source,
      fstype: 'fuse.sshfs',
      changed: true,
    });
    assert.equal(
      (await sh('h2', 'findmnt -n -o SOURCE,FSTYPE /var/aegir/platforms')).stdout.trim().replace(/\s+/g, ' '),
      `${source} fuse.sshfs`,
    );
    assert.equal(
      readManagedBlock(await bed().readFile('h2', '/etc/fstab'), MARKER),
      renderFstabSshfs({
        remoteUser: 'aegir',
        shareHost: bed().ip('h1'),
        sshPort: 22,
        exportPath: '/var/aegir/platforms',
        mountPoint: '/var/aegir/platforms',
        identityFile: '/root/.ssh/sitefleet-pack-alpha',
        knownHostsFile: '/root/.ssh/sitefleet-known_hosts',
      }),
    );
    const authorized =
      readManagedBlock(await bed().readFile('h1', '/var/aegir/.ssh/authorized_keys'), `${MARKER}:h2`) ?? '';
    assert.match(
      authorized,
      new RegExp(
        `^restrict,from="${bed().plan.subnet.replace(/\./g, '\\.')}",command="internal-sftp" ssh-ed25519 \\S+ sitefleet-pack-alpha@h2\\n$`,
      ),
    );
    const pinned = readManagedBlock(await bed().readFile('h2', '/root/.ssh/sitefleet-known_hosts'), MARKER) ?? '';
    const hostKey = (await bed().readFile('h1', '/etc/ssh/ssh_host_ed25519_key.pub')).split(' ').slice(0, 2).join(' ');
    assert.equal(pinned, `${bed().ip('h1')} ${hostKey}\n`);
  });

  test('files flow both ways with the aegir uid, and the sentinel written on the master is visible', async () => {
    const [h1, h2] = ['h1', 'h2'].map((n) => serverOf(bed(), n));
    await writeSentinel({ server: h1!, dir: '/var/aegir/platforms', token: 'second-token' });
    assert.deepEqual(await checkSentinel({ server: h2!, dir: '/var/aegir/platforms', token: 'second-token' }), {
      server: 'h2',
      visible: true,
      detail: '/var/aegir/platforms/.sitefleet-sentinel holds the token',
    });
    await sh('h2', 'echo upload > /var/aegir/platforms/from-slave.txt');
    assert.equal(
      (await sh('h1', 'stat -c %u:%g /var/aegir/platforms/from-slave.txt && cat /var/aegir/platforms/from-slave.txt'))
        .stdout,
      '1500:1500\nupload\n',
    );
  });

  test('running it again finds the same state', async () => {
    const h2 = serverOf(bed(), 'h2');
    const again = await ensureShareMount({ slave: h2, share: share('sshfs'), packName });
    assert.equal(again.changed, false);
    assert.equal(await countBlocks('h2', '/etc/fstab'), 1);
    assert.equal((await sh('h2', 'findmnt -n /var/aegir/platforms | wc -l')).stdout.trim(), '1');
  });

  test('the fstab line alone mounts the share again, as at boot', async () => {
    await sh('h2', 'umount /var/aegir/platforms && mount -a -t fuse.sshfs');
    assert.equal(
      (await inspectShareMount({ slave: serverOf(bed(), 'h2'), share: share('sshfs'), packName })).mounted,
      true,
    );
  });

  test("the slave's key opens sftp to the master and nothing else", async () => {
    const shell = await sh(
      'h2',
      `ssh -i /root/.ssh/sitefleet-pack-alpha -o UserKnownHostsFile=/root/.ssh/sitefleet-known_hosts -o StrictHostKeyChecking=yes -o BatchMode=yes aegir@${bed().ip('h1')} id`,
      false,
    );
    assert.notEqual(shell.code, 0);
    assert.doesNotMatch(shell.stdout, /uid=/);
  });
});

describe('the pack share: kernel NFS where the kernel has none', () => {
  test('fails non-retryably, names the host, suggests sshfs, and leaves fstab as it was', async () => {
    const h3 = serverOf(bed(), 'h3');
    const fstab = await bed().readFile('h3', '/etc/fstab');
    await assert.rejects(
      ensureShareMount({ slave: h3, share: share('kernel'), packName }),
      failure('KernelNfsMissing', { nonRetryable: true, message: /server h3 cannot mount NFS.*No such device.*sshfs/ }),
    );
    assert.equal(await bed().readFile('h3', '/etc/fstab'), fstab);
    assert.equal((await inspectShareMount({ slave: h3, share: share('kernel'), packName })).mounted, false);
  });
});

describe('the pack share: compensation', () => {
  test('unmounts and removes the fstab line, the key, its authorisation and the pinned key; twice is a no-op', async () => {
    const h2 = serverOf(bed(), 'h2');
    assert.deepEqual(await removeShareMount({ slave: h2, share: share('sshfs'), packName }), {
      server: 'h2',
      changed: true,
    });
    assert.equal((await sh('h2', 'findmnt /var/aegir/platforms', false)).code, 1);
    assert.equal(await countBlocks('h2', '/etc/fstab'), 0);
    assert.equal(readManagedBlock(await bed().readFile('h1', '/var/aegir/.ssh/authorized_keys'), `${MARKER}:h2`), null);
    assert.equal((await sh('h2', 'ls /root/.ssh/sitefleet-pack-alpha*', false)).code, 2);
    assert.deepEqual(await removeShareMount({ slave: h2, share: share('sshfs'), packName }), {
      server: 'h2',
      changed: false,
    });
  });

  test('removes the export; slaves can no longer read it; twice is a no-op', async () => {
    const h2 = serverOf(bed(), 'h2');
    assert.equal((await removeExport({ share: share('sshfs'), packName })).changed, true);
    assert.equal(await countBlocks('h1', GANESHA_CONFIG_FILE), 0);
    const read = await checkNfsExport({ server: h2, share: share('sshfs') });
    assert.equal(read.ok, false);
    assert.match(read.detail, /Permission denied|ACCES/);
    assert.equal((await removeExport({ share: share('sshfs'), packName })).changed, false);
  });
});
