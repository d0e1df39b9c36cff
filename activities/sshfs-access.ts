/**
 * sshfs access of a pack's slave to the share server (the mount itself is in nfs-mount.ts): each slave gets its own
 * key per pack (`/root/.ssh/sitefleet-pack-PACK`, generated on the slave; the private key never leaves it). Its
 * public key is authorised on the share server for the aegir user, in a managed block of that user's
 * authorized_keys, restricted to the pack's client subnet and to sftp only. The share server's host key — the one
 * pinned in the inventory, taken from the verified connection — is pinned in the slave's
 * `/root/.ssh/sitefleet-known_hosts` (StrictHostKeyChecking=yes). removeSshfsAccess takes all of it away again.
 */
import type { Server } from '../domain/model';
import type { PackShare } from '../domain/operations';
import { FailureType, permanentFailure, transientFailure } from '../common/failures';
import { ensureManagedBlock, removeManagedBlock } from './transport/managed-block';
import { editRemoteFile, readRemoteFile, removeRemoteFile } from './transport/remote-file';
import { verifiedHostKey } from './transport/ssh';
import { runRemote } from './transport/ssh-command';
import { packMarker, shareHost, SSHFS_KNOWN_HOSTS } from './nfs-share';

/** Where a slave keeps its key for the pack's sshfs mount. */
export function sshfsKeyPath(packName: string): string {
  return `/root/.ssh/sitefleet-pack-${packName}`;
}

/** Whether the slave's sshfs knows `no_contain_symlinks` (3.7.2 and later; older ones keep links verbatim anyway). */
export async function sshfsHasContainSymlinks(slave: Server, signal?: AbortSignal): Promise<boolean> {
  const r = await runRemote(slave, ['sh', '-c', 'sshfs -h 2>&1 | grep -c contain_symlinks || true'], {
    timeoutMs: 30_000,
    signal,
  });
  return Number(r.stdout.trim()) > 0;
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

/** Gives the slave sshfs access to the share: its key, authorised on the share server, and the pinned host key. */
export async function ensureSshfsAccess(
  share: PackShare,
  packName: string,
  slave: Server,
  signal?: AbortSignal,
): Promise<boolean> {
  const publicKey = await ensureSlaveKey(slave, packName, signal);
  const authorized = await authorizeSlaveKey(share, packName, slave, publicKey, signal);
  const pinned = await pinShareHostKey(share, packName, slave, signal);
  return authorized || pinned;
}

/** Undoes ensureSshfsAccess: the pinned host key (block `marker`), the slave's key and its authorisation. */
export async function removeSshfsAccess(
  share: PackShare,
  packName: string,
  slave: Server,
  marker: string,
  signal?: AbortSignal,
): Promise<boolean> {
  // The file is sitefleet's own: with no pack's key left in it, it goes, as it was before the first setup.
  const known =
    (await readRemoteFile(slave, SSHFS_KNOWN_HOSTS, { signal })) === null
      ? { changed: false }
      : await editRemoteFile(slave, SSHFS_KNOWN_HOSTS, (text) => removeManagedBlock(text ?? '', marker), { signal });
  if ('content' in known && known.content.trim() === '') {
    await removeRemoteFile(slave, SSHFS_KNOWN_HOSTS, { signal });
  }
  const key = sshfsKeyPath(packName);
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
    (text) => (text === null ? '' : removeManagedBlock(text, authorizedKeyMarker(packName, slave))),
    { signal },
  );
  return known.changed || auth.changed || rm.stdout.includes('removed');
}
