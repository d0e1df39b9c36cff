/**
 * The mount side of a pack's share, on every slave: `kernel` — `mount -t nfs` through a managed /etc/fstab line;
 * `sshfs` — a FUSE mount over ssh through a managed `fuse.sshfs` fstab line, for hosts whose kernel has no NFS
 * client.
 *
 * sshfs keys: each slave gets its own key per pack (`/root/.ssh/sitefleet-pack-PACK`, generated on the slave; the
 * private key never leaves it). Its public key is authorised on the share server for the aegir user, in a managed
 * block of that user's authorized_keys, restricted to the pack's client subnet and to sftp only. The share
 * server's host key — the one pinned in the inventory, taken from the verified connection — is pinned in the
 * slave's `/root/.ssh/sitefleet-known_hosts` (StrictHostKeyChecking=yes). Compensation removes all of it.
 */
import { serverSchema, type Server } from '../domain/model';
import type { PackShare } from '../domain/operations';
import { platformsDir } from '../domain/paths';
import { activityCancellationSignal } from './support/activity-context';
import { parseInput } from './support/activity-input';
import { badInput, FailureType, permanentFailure, transientFailure } from '../common/failures';
import { ensureManagedBlock, readManagedBlock, removeManagedBlock } from './transport/managed-block';
import { editRemoteFile, readRemoteFile } from './transport/remote-file';
import { renderFstabNfs, renderFstabSshfs } from './render';
import { verifiedHostKey } from './transport/ssh';
import { runRemote } from './transport/ssh-command';
import { FSTAB_FILE, NFS_TIMEOUT_MS, packMarker, parseShare, shareHost, SSHFS_KNOWN_HOSTS } from './nfs-share';

interface MountState {
  mounted: boolean;
  source: string | null;
  fstype: string | null;
}

async function mountState(slave: Server, mountPoint: string, signal?: AbortSignal): Promise<MountState> {
  const r = await runRemote(slave, ['findmnt', '-n', '-o', 'SOURCE,FSTYPE', '--mountpoint', mountPoint], {
    timeoutMs: 30_000,
    signal,
    allowExitCodes: [0, 1],
  });
  const [source, fstype] = r.stdout.trim().split(/\s+/);
  return r.code === 0 && source
    ? { mounted: true, source, fstype: fstype ?? null }
    : { mounted: false, source: null, fstype: null };
}

function sshfsKeyPath(packName: string): string {
  return `/root/.ssh/sitefleet-pack-${packName}`;
}

function mountSource(share: PackShare): string {
  return share.clientFlavour === 'kernel'
    ? `${shareHost(share)}:${share.exportPath}`
    : `${share.server.aegirUser}@${shareHost(share)}:${share.exportPath}`;
}

/** Whether the slave's sshfs knows `no_contain_symlinks` (3.7.2 and later; older ones keep links verbatim anyway). */
async function sshfsHasContainSymlinks(slave: Server, signal?: AbortSignal): Promise<boolean> {
  const r = await runRemote(slave, ['sh', '-c', 'sshfs -h 2>&1 | grep -c contain_symlinks || true'], {
    timeoutMs: 30_000,
    signal,
  });
  return Number(r.stdout.trim()) > 0;
}

function fstabLine(share: PackShare, packName: string, mountPoint: string, symlinksVerbatim: boolean): string {
  return share.clientFlavour === 'kernel'
    ? renderFstabNfs({ shareHost: shareHost(share), exportPath: share.exportPath, mountPoint })
    : renderFstabSshfs({
        remoteUser: share.server.aegirUser,
        shareHost: shareHost(share),
        sshPort: share.server.ssh.port,
        exportPath: share.exportPath,
        mountPoint,
        identityFile: sshfsKeyPath(packName),
        knownHostsFile: SSHFS_KNOWN_HOSTS,
        symlinksVerbatim,
      });
}

/** The marker of one slave's key in the share server's authorized_keys. */
function authorizedKeyMarker(packName: string, slave: Server): string {
  return `${packMarker(packName)}:${slave.name}`;
}

async function aegirHome(server: Server, signal?: AbortSignal): Promise<string> {
  const r = await runRemote(server, ['getent', 'passwd', server.aegirUser], {
    timeoutMs: 30_000,
    signal,
    allowExitCodes: [0, 2],
  });
  const home = r.stdout.trim().split(':')[5];
  if (r.code !== 0 || !home) {
    throw permanentFailure(
      FailureType.ServerNotReady,
      `server ${server.name} has no user ${server.aegirUser}: create it (same uid/gid on every member)`,
    );
  }
  return home;
}

/** Generates the slave's per-pack key if missing; returns its public key line. */
async function ensureSlaveKey(slave: Server, packName: string, signal?: AbortSignal): Promise<string> {
  const script = `set -eu
key=$1 comment=$2
mkdir -p -m 0700 -- "\${key%/*}"
[ -f "$key" ] || ssh-keygen -q -t ed25519 -N '' -C "$comment" -f "$key" </dev/null
cat -- "$key.pub"
`;
  const r = await runRemote(
    slave,
    ['sh', '-c', script, 'sitefleet-keygen', sshfsKeyPath(packName), `sitefleet-pack-${packName}@${slave.name}`],
    {
      timeoutMs: 30_000,
      signal,
    },
  );
  const line = r.stdout.trim();
  if (!/^ssh-ed25519 [A-Za-z0-9+/=]+ \S+$/.test(line)) {
    throw transientFailure(
      FailureType.RemoteCommandFailed,
      `server ${slave.name}: unexpected public key: ${line.slice(0, 80)}`,
    );
  }
  return line;
}

/** Authorises the slave's key for the aegir user on the share server: sftp only, from the pack's subnet. */
async function authorizeSlaveKey(
  share: PackShare,
  packName: string,
  slave: Server,
  publicKey: string,
  signal?: AbortSignal,
): Promise<boolean> {
  const home = await aegirHome(share.server, signal);
  await runRemote(share.server, ['install', '-d', '-o', share.server.aegirUser, '-m', '0700', '--', `${home}/.ssh`], {
    timeoutMs: 30_000,
    signal,
  });
  const line = `restrict,from="${share.clients}",command="internal-sftp" ${publicKey}`;
  const edit = await editRemoteFile(
    share.server,
    `${home}/.ssh/authorized_keys`,
    (text) => ensureManagedBlock(text ?? '', authorizedKeyMarker(packName, slave), line),
    { owner: share.server.aegirUser, mode: '0600', signal },
  );
  return edit.changed;
}

/** Pins the share server's host key (the verified, pinned one) in the slave's sitefleet known_hosts. */
async function pinShareHostKey(
  share: PackShare,
  packName: string,
  slave: Server,
  signal?: AbortSignal,
): Promise<boolean> {
  const key = await verifiedHostKey(share.server);
  const host = share.server.ssh.port === 22 ? shareHost(share) : `[${shareHost(share)}]:${share.server.ssh.port}`;
  const edit = await editRemoteFile(
    slave,
    SSHFS_KNOWN_HOSTS,
    (text) =>
      ensureManagedBlock(text ?? '', packMarker(packName), `${host} ${key.type} ${key.blob.toString('base64')}`),
    { mode: '0644', signal },
  );
  return edit.changed;
}

const NFS_MISSING = /No such device|unknown filesystem type 'nfs|helper program|mount\.nfs: not found|wrong fs type/i;

export interface ShareMountInput {
  slave: Server;
  share: PackShare;
  packName: string;
}

export interface ShareMountState {
  server: string;
  flavour: 'kernel' | 'sshfs';
  mountPoint: string;
  /** The share is mounted at the mount point, from the expected source. */
  mounted: boolean;
  /** The managed fstab line is present. */
  fstab: boolean;
  source: string | null;
  fstype: string | null;
}

function parseMountInput(input: ShareMountInput): {
  slave: Server;
  share: PackShare;
  marker: string;
  mountPoint: string;
} {
  const slave = parseInput(serverSchema, input.slave, 'slave');
  const share = parseShare(input.share);
  if (slave.name === share.server.name)
    throw badInput(`slave ${slave.name} is the share server itself; it needs no mount`);
  return { slave, share, marker: packMarker(input.packName), mountPoint: platformsDir(slave) };
}

/** Whether the share is mounted on a slave and in its fstab. Changes nothing. */
export async function inspectShareMount(input: ShareMountInput): Promise<ShareMountState> {
  const signal = activityCancellationSignal();
  const { slave, share, marker, mountPoint } = parseMountInput(input);
  const [state, fstab] = await Promise.all([
    mountState(slave, mountPoint, signal),
    readRemoteFile(slave, FSTAB_FILE, { signal }),
  ]);
  return {
    server: slave.name,
    flavour: share.clientFlavour,
    mountPoint,
    mounted: state.mounted && state.source === mountSource(share),
    fstab: readManagedBlock(fstab ?? '', marker) !== null,
    source: state.source,
    fstype: state.fstype,
  };
}

/**
 * Mounts the pack's share on a slave at its platforms directory, through a managed fstab line (so it comes back
 * at boot; the mount itself reads that line, which proves it). sshfs: key, authorisation and host key pinning as
 * described at the top of this file. Kernel NFS on a host without NFS support fails with a non-retryable
 * KernelNfsMissing that suggests sshfs, after putting the fstab back. Idempotent.
 */
export async function ensureShareMount(input: ShareMountInput): Promise<ShareMountState & { changed: boolean }> {
  const signal = activityCancellationSignal();
  const { slave, share, marker, mountPoint } = parseMountInput(input);
  let changed = false;
  if (share.clientFlavour === 'sshfs') {
    const publicKey = await ensureSlaveKey(slave, input.packName, signal);
    changed = (await authorizeSlaveKey(share, input.packName, slave, publicKey, signal)) || changed;
    changed = (await pinShareHostKey(share, input.packName, slave, signal)) || changed;
  }
  const verbatim = share.clientFlavour === 'sshfs' && (await sshfsHasContainSymlinks(slave, signal));
  const line = fstabLine(share, input.packName, mountPoint, verbatim);
  const fstab = await editRemoteFile(slave, FSTAB_FILE, (text) => ensureManagedBlock(text ?? '', marker, line), {
    signal,
  });
  changed ||= fstab.changed;
  await runRemote(slave, ['mkdir', '-p', '--', mountPoint], { timeoutMs: 30_000, signal });
  let state = await mountState(slave, mountPoint, signal);
  const source = mountSource(share);
  if (state.mounted && (state.source !== source || fstab.changed)) {
    if (!/^(nfs4?|fuse\.sshfs)$/.test(state.fstype ?? '')) {
      throw permanentFailure(
        FailureType.ServerNotReady,
        `server ${slave.name}: ${mountPoint} is already a ${state.fstype} mount of ${state.source}; unmount it first`,
      );
    }
    await unmount(slave, mountPoint, signal);
    state = { mounted: false, source: null, fstype: null };
  }
  if (!state.mounted) {
    const r = await runRemote(slave, ['mount', mountPoint], {
      timeoutMs: NFS_TIMEOUT_MS,
      signal,
      allowExitCodes: 'any',
    });
    if (r.code !== 0) {
      const output = `${r.stderr}${r.stdout}`.trim();
      // Put the fstab back as it was, so that a boot does not try a mount that cannot work.
      const before = readManagedBlock(fstab.previous ?? '', marker);
      await editRemoteFile(
        slave,
        FSTAB_FILE,
        (text) =>
          before === null ? removeManagedBlock(text ?? '', marker) : ensureManagedBlock(text ?? '', marker, before),
        { signal },
      );
      if (share.clientFlavour === 'kernel' && (NFS_MISSING.test(output) || r.code === 32)) {
        throw permanentFailure(
          FailureType.KernelNfsMissing,
          `server ${slave.name} cannot mount NFS: its kernel or userland has no NFS client (${output}). ` +
            `Use the sshfs client flavour for this pack (share.clientFlavour = "sshfs"), or install NFS client support on ${slave.name}.`,
          { server: slave.name, output },
        );
      }
      throw transientFailure(
        FailureType.RemoteCommandFailed,
        `server ${slave.name}: mounting ${source} on ${mountPoint} failed: ${output}`,
        {
          server: slave.name,
        },
      );
    }
    changed = true;
    state = await mountState(slave, mountPoint, signal);
  }
  return {
    server: slave.name,
    flavour: share.clientFlavour,
    mountPoint,
    mounted: state.mounted && state.source === source,
    fstab: true,
    source: state.source,
    fstype: state.fstype,
    changed,
  };
}

async function unmount(slave: Server, mountPoint: string, signal?: AbortSignal): Promise<void> {
  const r = await runRemote(slave, ['umount', mountPoint], {
    timeoutMs: NFS_TIMEOUT_MS,
    signal,
    allowExitCodes: 'any',
  });
  if (r.code === 0) return;
  // Busy (a php-fpm worker has a file open): detach now, the kernel finishes when the last user lets go.
  await runRemote(slave, ['umount', '-l', mountPoint], { timeoutMs: NFS_TIMEOUT_MS, signal });
}

/**
 * Compensation of ensureShareMount: unmounts, removes the fstab line and, for sshfs, the key, its authorisation on
 * the share server and the pinned host key. Idempotent.
 */
export async function removeShareMount(input: ShareMountInput): Promise<{ server: string; changed: boolean }> {
  const signal = activityCancellationSignal();
  const { slave, share, marker, mountPoint } = parseMountInput(input);
  let changed = false;
  const state = await mountState(slave, mountPoint, signal);
  if (state.mounted && state.source === mountSource(share)) {
    await unmount(slave, mountPoint, signal);
    changed = true;
  }
  changed =
    (await editRemoteFile(slave, FSTAB_FILE, (text) => removeManagedBlock(text ?? '', marker), { signal })).changed ||
    changed;
  if (share.clientFlavour === 'sshfs') {
    const known = await editRemoteFile(slave, SSHFS_KNOWN_HOSTS, (text) => removeManagedBlock(text ?? '', marker), {
      signal,
    });
    const key = sshfsKeyPath(input.packName);
    const rm = await runRemote(
      slave,
      ['sh', '-c', '[ -e "$1" ] || exit 0; rm -f -- "$1" "$1.pub"; echo removed', 'sitefleet-rmkey', key],
      {
        timeoutMs: 30_000,
        signal,
      },
    );
    const home = await aegirHome(share.server, signal);
    const auth = await editRemoteFile(
      share.server,
      `${home}/.ssh/authorized_keys`,
      (text) => (text === null ? '' : removeManagedBlock(text, authorizedKeyMarker(input.packName, slave))),
      { signal },
    );
    changed = changed || known.changed || auth.changed || rm.stdout.includes('removed');
  }
  return { server: slave.name, changed };
}
