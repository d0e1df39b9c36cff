/**
 * The one place that turns domain objects into paths on a server (Aegir's layout).
 */
import type { Server } from './model';

type Layout = Pick<Server, 'aegirRoot'>;

export const platformsDir = (s: Layout): string => `${s.aegirRoot}/platforms`;
export const platformRoot = (s: Layout, platform: string): string => `${platformsDir(s)}/${platform}`;
export const sitesDir = (s: Layout, platform: string): string => `${platformRoot(s, platform)}/sites`;
export const siteDir = (s: Layout, platform: string, domain: string): string => `${sitesDir(s, platform)}/${domain}`;
/** Where a member mounts its cluster's uploads share (one directory per site in it). */
export const uploadsMountPoint = (s: Layout, cluster: string): string => `${s.aegirRoot}/shared/${cluster}`;
/**
 * The name a cluster's uploads share keeps its managed blocks (exports, fstab) and sshfs keys under; never a pack's
 * name (domain/fields.ts shareOwnerName).
 */
export const uploadsShareName = (cluster: string): string => `uploads.${cluster}`;
/**
 * Where a member sees its cluster's uploads: its mount point, or the export itself on the files server (`mounted`:
 * whether the path must be a mount point).
 */
export function uploadsRootOn(
  server: Layout & Pick<Server, 'name'>,
  share: { server: Pick<Server, 'name'>; exportPath: string },
  cluster: string,
): { root: string; mounted: boolean } {
  return server.name === share.server.name
    ? { root: share.exportPath, mounted: false }
    : { root: uploadsMountPoint(server, cluster), mounted: true };
}
export const backupsDir = (s: Layout): string => `${s.aegirRoot}/backups`;

/** /var/aegir/config/server_NAME/{nginx,apache} */
export const serverConfigDir = (s: Layout & Pick<Server, 'name'>, type: 'nginx' | 'apache'): string =>
  `${s.aegirRoot}/config/server_${s.name}/${type}`;
export const vhostDir = (s: Layout & Pick<Server, 'name'>, type: 'nginx' | 'apache'): string =>
  `${serverConfigDir(s, type)}/vhost.d`;
export const vhostPath = (s: Layout & Pick<Server, 'name'>, type: 'nginx' | 'apache', domain: string): string =>
  `${vhostDir(s, type)}/${domain}`;
