/**
 * The WordPress fixture of the end-to-end and reliability tests: Debian's WordPress tree as platform `wp` of
 * cluster `c1`, and WordPress sites on it whose database is on host `h4` (the bed's db host).
 */
import type { Platform, Site } from '../../domain/model';

export const WORDPRESS_SOURCE = '/usr/share/wordpress';

/** Platform `wp` (Debian's WordPress) of cluster `c1`. */
export const wordpressPlatform: Platform = {
  name: 'wp',
  target: { kind: 'cluster', name: 'c1' },
  source: { type: 'path', path: WORDPRESS_SOURCE },
  profile: 'wordpress',
};

/** An enabled http site on platform `wp`, its database on `h4`. */
export const wordpressSite = (domain: string): Site => ({
  domain,
  aliases: [],
  platform: 'wp',
  dbServer: 'h4',
  https: false,
  status: 'enabled',
});
