/**
 * A pack's share, the parts both sides use: the share's schema, the marker of the pack's managed blocks, the
 * paths of the files sitefleet manages, and the address slaves reach the share server at. The export side is in
 * nfs-export.ts, the mount side in nfs-mount.ts.
 *
 * Server flavours: `kernel` — a managed line in /etc/exports, then `exportfs -ra`; `ganesha` — a managed EXPORT
 * block in the nfs-ganesha config, then a reload (SIGHUP). Client flavours: `kernel` — `mount -t nfs` through a
 * managed /etc/fstab line; `sshfs` — a FUSE mount over ssh through a managed `fuse.sshfs` fstab line, for hosts
 * whose kernel has no NFS client.
 */
import { z } from 'zod';
import { absolutePath, ipv4Subnet, shareOwnerName } from '../domain/fields';
import { serverSchema } from '../domain/model';
import type { PackShare } from '../domain/operations';
import { parseInput } from './support/activity-input';

export const EXPORTS_FILE = '/etc/exports';
export const GANESHA_CONFIG_FILE = '/etc/ganesha/ganesha.conf';
export const GANESHA_PID_FILES = ['/run/ganesha/ganesha.pid', '/var/run/ganesha.pid'];
export const FSTAB_FILE = '/etc/fstab';
/** Where a slave keeps the share server's pinned host key for sshfs. */
export const SSHFS_KNOWN_HOSTS = '/root/.ssh/sitefleet-known_hosts';

export const NFS_TIMEOUT_MS = 60_000;
/** The share check's marker files in the export (activities/nfs-mount.ts checkShareRead). */
export const SHARE_MARKER_PREFIX = '.sitefleet-share-check-';
/** The sentinel SetupPackShare writes into the export (activities/checks.ts). */
export const SHARE_SENTINEL = '.sitefleet-sentinel';

const shareSchema = z
  .object({
    server: serverSchema,
    exportPath: absolutePath,
    clients: ipv4Subnet,
    clientFlavour: z.enum(['kernel', 'sshfs']),
  })
  .strict();

export function parseShare(share: PackShare): PackShare {
  return parseInput(shareSchema, share, 'share');
}

/** The marker of a pack's managed blocks (exports, ganesha, fstab, known_hosts). */
export function packMarker(packName: string): string {
  return `sitefleet:pack:${parseInput(shareOwnerName, packName, 'packName')}`;
}

/** The address slaves reach the share server at. */
export function shareHost(share: PackShare): string {
  return share.server.address ?? share.server.host;
}
