/**
 * The one place that turns domain objects into paths on a server (Aegir's layout).
 */
import type { Server } from './model';

type Layout = Pick<Server, 'aegirRoot'>;

export const platformsDir = (s: Layout): string => `${s.aegirRoot}/platforms`;
export const platformRoot = (s: Layout, platform: string): string => `${platformsDir(s)}/${platform}`;
export const sitesDir = (s: Layout, platform: string): string => `${platformRoot(s, platform)}/sites`;
export const siteDir = (s: Layout, platform: string, domain: string): string => `${sitesDir(s, platform)}/${domain}`;
export const backupsDir = (s: Layout): string => `${s.aegirRoot}/backups`;

/** /var/aegir/config/server_NAME/{nginx,apache} */
export const serverConfigDir = (s: Layout & Pick<Server, 'name'>, type: 'nginx' | 'apache'): string =>
  `${s.aegirRoot}/config/server_${s.name}/${type}`;
export const vhostDir = (s: Layout & Pick<Server, 'name'>, type: 'nginx' | 'apache'): string =>
  `${serverConfigDir(s, type)}/vhost.d`;
export const vhostPath = (s: Layout & Pick<Server, 'name'>, type: 'nginx' | 'apache', domain: string): string =>
  `${vhostDir(s, type)}/${domain}`;
