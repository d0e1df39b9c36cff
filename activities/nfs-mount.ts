/**
 * The mount side of a pack's share, on every slave: `kernel` — `mount -t nfs` through a managed /etc/fstab line;
 * `sshfs` — a FUSE mount over ssh through a managed `fuse.sshfs` fstab line, for hosts whose kernel has no NFS
 * client.
 *
 * sshfs keys and the pinned host key of the share server: sshfs-access.ts. Compensation removes all of it.
 */
import { randomBytes } from 'node:crypto';
import { absolutePath } from '../domain/fields';
import { serverSchema, type Server } from '../domain/model';
import type { PackShare } from '../domain/operations';
import { platformsDir } from '../domain/paths';
import { activityCancellationSignal } from './support/activity-context';
import { parseInput } from './support/activity-input';
import { badInput, FailureType, permanentFailure, transientFailure } from '../common/failures';
import { ensureManagedBlock, readManagedBlock, removeManagedBlock } from './transport/managed-block';
import { editRemoteFile, readRemoteFile } from './transport/remote-file';
import { renderFstabNfs, renderFstabSshfs } from './render';
import { runRemote } from './transport/ssh-command';
import {
  FSTAB_FILE,
  NFS_TIMEOUT_MS,
  packMarker,
  parseShare,
  SHARE_MARKER_PREFIX,
  shareHost,
  SSHFS_KNOWN_HOSTS,
} from './nfs-share';
import { ensureSshfsAccess, removeSshfsAccess, sshfsHasContainSymlinks, sshfsKeyPath } from './sshfs-access';

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

function mountSource(share: PackShare): string {
  return share.clientFlavour === 'kernel'
    ? `${shareHost(share)}:${share.exportPath}`
    : `${share.server.aegirUser}@${shareHost(share)}:${share.exportPath}`;
}

function fstabLine(
  share: PackShare,
  packName: string,
  mountPoint: string,
  symlinksVerbatim: boolean,
  groupWritable: boolean,
): string {
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
        ...(groupWritable ? { umask: '0002', noDirCache: true } : {}),
      });
}

const NFS_MISSING = /No such device|unknown filesystem type 'nfs|helper program|mount\.nfs: not found|wrong fs type/i;

export interface ShareMountInput {
  slave: Server;
  share: PackShare;
  /** The owner of the managed blocks and the sshfs key: a pack's name, or a cluster's uploads share name. */
  packName: string;
  /** Where the slave mounts the export. @default the slave's platforms directory (a pack's share) */
  mountPoint?: string;
  /**
   * A share several members write (a cluster's uploads). sshfs: every file and directory shows group rwx (FUSE
   * umask 0002: others may read and traverse, as on the files server), so that the web group (php-fpm) may write
   * and rewrite what any member wrote, and directory listings are not cached (dir_cache=no), so that what one
   * member adds or deletes is listed through every other at once. @default false
   */
  groupWritable?: boolean;
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
  const mountPoint =
    input.mountPoint === undefined ? platformsDir(slave) : parseInput(absolutePath, input.mountPoint, 'mountPoint');
  return { slave, share, marker: packMarker(input.packName), mountPoint };
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
 * described in sshfs-access.ts. Kernel NFS on a host without NFS support fails with a non-retryable
 * KernelNfsMissing that suggests sshfs, after putting the fstab back. Idempotent.
 */
export async function ensureShareMount(input: ShareMountInput): Promise<ShareMountState & { changed: boolean }> {
  const signal = activityCancellationSignal();
  const { slave, share, marker, mountPoint } = parseMountInput(input);
  let changed = false;
  if (share.clientFlavour === 'sshfs') {
    changed = await ensureSshfsAccess(share, input.packName, slave, signal);
  }
  const verbatim = share.clientFlavour === 'sshfs' && (await sshfsHasContainSymlinks(slave, signal));
  const line = fstabLine(share, input.packName, mountPoint, verbatim, input.groupWritable === true);
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
    // The fstab line says `bg` (at boot, a master that is not up yet must not hold the slave's boot: mount retries
    // in the background). sitefleet's own mount is one foreground try, so that its exit code tells the truth.
    const argv = share.clientFlavour === 'kernel' ? ['mount', '-o', 'fg,retry=0', mountPoint] : ['mount', mountPoint];
    const r = await runRemote(slave, argv, {
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
      if (share.clientFlavour === 'kernel' && NFS_MISSING.test(output)) {
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
    changed = (await removeSshfsAccess(share, input.packName, slave, marker, signal)) || changed;
  }
  return { server: slave.name, changed };
}

// ---------------------------------------------------------------- reading through the mount

/** How long one read through a slave's mount may take before the mount counts as hung. */
const SHARE_READ_SECONDS = 4;
/** How long a slave may take to see a marker the master has just written (client caches), in all. */
const SHARE_SEE_MS = 4_000;

export type ShareReadState = 'ok' | 'hung' | 'error' | 'empty' | 'stale' | 'missing' | 'unconfirmed';

export interface ShareReadResult {
  server: string;
  ok: boolean;
  state: ShareReadState;
  detail: string;
}

/**
 * Reads the share through a slave's mount, as its web server would: the master (the share server) writes a marker
 * file with a fresh token into the export, under a name never used before (so no client cache can hold it), then
 * the slave reads it through its mount with a short timeout. Named findings: `hung` (the read did not return within
 * a few seconds), `error` (Input/output error, transport not connected...), `empty` (the mount point lists nothing:
 * a cache or an unmounted directory), `stale` (the slave sees an older marker but not this one), `missing` (no
 * marker at all), `unconfirmed` (no fresh marker could be written: the master is unreachable; what the slave still
 * serves comes from a session or cache that will not survive a reconnect). Never throws for a finding.
 */
export async function checkShareRead(input: ShareMountInput): Promise<ShareReadResult> {
  const signal = activityCancellationSignal();
  const { slave, share, mountPoint } = parseMountInput(input);
  const token = `${Date.now().toString(36)}-${randomBytes(6).toString('hex')}`;
  const prefix = `${SHARE_MARKER_PREFIX}${slave.name}-`;
  const name = `${prefix}${token}`;
  let written: string | null = null;
  try {
    await runRemote(
      share.server,
      [
        'sh',
        '-c',
        'set -eu; dir=$1 prefix=$2 name=$3 token=$4; rm -f -- "$dir/$prefix"*; ' +
          'printf "%s\\n" "$token" > "$dir/.$name.tmp"; chmod 0644 -- "$dir/.$name.tmp"; mv -f -- "$dir/.$name.tmp" "$dir/$name"',
        'sitefleet-share-marker',
        share.exportPath,
        prefix,
        name,
        token,
      ],
      { timeoutMs: 15_000, signal },
    );
  } catch (err) {
    written = (err as Error).message;
  }
  // On the slave: read the marker with a timeout; when it is not there, list the directory (also with a timeout)
  // to tell an empty mount from a stale one.
  const script = `dir=$1 name=$2 prefix=$3 secs=$4
out=$(timeout -k 1 "$secs" cat -- "$dir/$name" 2>&1); rc=$?
echo "read $rc $(printf '%s' "$out" | tr '\\n' ' ' | head -c 400)"
[ "$rc" = 0 ] && exit 0
ls=$(timeout -k 1 "$secs" ls -A -- "$dir" 2>&1); lrc=$?
echo "list $lrc $(printf '%s\\n' "$ls" | grep -c .) $(printf '%s\\n' "$ls" | grep -c "^$prefix")"
printf '%s\\n' "$ls" | grep -v "^\\." | tr '\\n' ' ' | head -c 300; echo
`;
  const deadline = Date.now() + SHARE_SEE_MS;
  for (;;) {
    const r = await runRemote(
      slave,
      ['sh', '-c', script, 'sitefleet-share-read', mountPoint, name, prefix, String(SHARE_READ_SECONDS)],
      { timeoutMs: (SHARE_READ_SECONDS + 2) * 2 * 1000, signal, allowExitCodes: 'any' },
    );
    const result = judgeShareRead(slave.name, mountPoint, share.server.name, token, written, r.stdout);
    // A client cache may hide a file written a moment ago: ask again for a few seconds, not for a dead mount.
    if (result.ok || !['stale', 'missing'].includes(result.state) || written !== null || Date.now() > deadline) {
      return result;
    }
    await new Promise((resolve) => setTimeout(resolve, 500));
  }
}

function judgeShareRead(
  slave: string,
  mountPoint: string,
  master: string,
  token: string,
  writeError: string | null,
  stdout: string,
): ShareReadResult {
  const lines = stdout.split('\n');
  const read = /^read (\d+) ?(.*)$/.exec(lines[0] ?? '');
  const readCode = read ? Number(read[1]) : -1;
  const readOut = (read?.[2] ?? stdout).trim();
  const notFresh = (what: string): string =>
    writeError === null
      ? what
      : `cannot confirm the share: no fresh marker could be written on ${master} (${writeError.slice(0, 300)}); through the mount: ${what}`;
  const finding = (state: ShareReadState, detail: string): ShareReadResult => ({
    server: slave,
    ok: false,
    state: writeError === null ? state : state === 'hung' || state === 'error' ? state : 'unconfirmed',
    detail: `${mountPoint} on ${slave}: ${notFresh(detail)}`,
  });
  if (readCode === 0) {
    if (writeError === null && readOut === token) {
      return { server: slave, ok: true, state: 'ok', detail: `reads the marker ${master} just wrote (${token})` };
    }
    return finding('stale', `the marker reads "${readOut.slice(0, 60)}", not ${token}`);
  }
  if (readCode === 124 || readCode === 137) {
    return finding('hung', `hung: reading a file did not return within ${SHARE_READ_SECONDS} s`);
  }
  const missing = /No such file or directory/.test(readOut);
  if (!missing) return finding('error', `reading fails: ${readOut.slice(0, 200) || `exit ${readCode}`}`);
  const list = /^list (\d+) (\d+) (\d+)$/.exec(lines[1] ?? '');
  if (!list) return finding('error', `reading fails: ${readOut.slice(0, 200)}`);
  const [listCode, entries, markers] = [Number(list[1]), Number(list[2]), Number(list[3])];
  if (listCode === 124 || listCode === 137) {
    return finding('hung', `hung: listing the directory did not return within ${SHARE_READ_SECONDS} s`);
  }
  if (listCode !== 0) return finding('error', `listing fails: ${(lines[2] ?? '').trim().slice(0, 200)}`);
  if (writeError !== null && entries > 0) {
    return finding('unconfirmed', `it still lists ${entries} entries, from an open session or a cache`);
  }
  if (entries === 0) return finding('empty', 'is empty: nothing of the share is served (an empty cache or no mount)');
  if (markers > 0)
    return finding('stale', `shows an older marker but not the one ${master} just wrote: served from a cache`);
  return finding('missing', `has no marker from ${master}: it is not the master's export`);
}
