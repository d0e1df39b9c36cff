/**
 * What proves that a site works through a node: the path to request and what the answer must hold, per profile.
 * Used by the install workflows and by verification, so both judge a site the same way.
 */
import type { Platform, Site } from './model';

export interface SiteProbeSpec {
  path: string;
  expectStatus: number[];
  expectBodyMarker?: string;
}

/**
 * sitefleet's health script at the root of every WordPress platform (templates/wordpress-health.php.njk): the
 * dispatcher's site selection and the site's title from its own database, without booting WordPress.
 */
export const WORDPRESS_HEALTH_PATH = '/sitefleet-health.php';

export function siteProbeSpec(
  site: Pick<Site, 'domain' | 'status'>,
  platform: Pick<Platform, 'profile'>,
): SiteProbeSpec {
  if (site.status === 'disabled') return { path: '/', expectStatus: [503] };
  switch (platform.profile) {
    case 'wordpress':
      // The REST index answers only when WordPress is installed and reads this site's database: its "name" is
      // the blog title, which the installer sets to the domain.
      return { path: '/?rest_route=/', expectStatus: [200], expectBodyMarker: `"name":"${site.domain}"` };
    case 'drupal':
      return { path: '/', expectStatus: [200, 301, 302], expectBodyMarker: undefined };
    default:
      return { path: '/', expectStatus: [200] };
  }
}

/**
 * The cheap check that a node serves a site, for verification on every node: for WordPress the health script,
 * whose answer names the site exactly as the REST index does (so a wrong vhost, a missing or wrong settings file,
 * a broken PHP or an unreachable database all fail it); for other profiles the full probe, which is cheap enough.
 * The full probe still runs for every site on one node (workflows/verify.ts): all nodes run the same code, which
 * the drift check compares with the source.
 */
export function siteHealthSpec(
  site: Pick<Site, 'domain' | 'status'>,
  platform: Pick<Platform, 'profile'>,
): SiteProbeSpec {
  if (site.status === 'disabled' || platform.profile !== 'wordpress') return siteProbeSpec(site, platform);
  return { path: WORDPRESS_HEALTH_PATH, expectStatus: [200], expectBodyMarker: `"name":"${site.domain}"` };
}
