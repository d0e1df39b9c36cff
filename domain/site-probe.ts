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
