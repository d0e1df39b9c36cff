/**
 * Per-site work on one server in one activity, for the workflows that go over every site of a group (ResyncCluster,
 * the rolling update's probes, a new member's probes). One activity per server instead of one or two per site
 * keeps those workflows' histories the same size whatever the number of sites (a resync of 1,000 sites on
 * 8 members was ~16,000 activities, over Temporal's 51,200-event limit): the history holds the inputs and a
 * summary, the activity heartbeats per site.
 */
import { z } from 'zod';
import { platformSchema, serverSchema, siteSchema, type Platform, type Server, type Site } from '../domain/model';
import { siteProbeSpec } from '../domain/site-probe';
import { boundHeartbeat } from './support/activity-context';
import { parseInput } from './support/activity-input';
import { allBounded } from '../common/settle';
import { probeSite } from './checks';
import { ensureSiteDir, type EnsureSiteDirInput } from './site-files';
import { installVhosts } from './vhost';

/** Sites whose directories one server's batch ensures at the same time. */
const SITES_AT_ONCE = 4;

export interface EnsureSitesOnServerInput {
  server: Server;
  platforms: Platform[];
  sites: Site[];
  /** Database servers of the sites, to rewrite a lost settings file. */
  dbServers: Server[];
  /** Whether the server holds the code (a code receiver): then each site's directory and settings are ensured. */
  receivesCode: boolean;
  /** A cluster's shared uploads on this server: each site's files/ and private/ link into it (ensureSiteDir). */
  uploads?: EnsureSiteDirInput['uploads'];
}

export interface EnsureSitesOnServerResult {
  server: string;
  /** What was repaired, in order: `site dir DOMAIN`, `vhost DOMAIN`. */
  repaired: string[];
  /** Sites looked at (sites on a platform that is not listed are skipped). */
  sites: number;
}

/**
 * Ensures every site's directory and settings (on a code receiver) and its vhost on one server. The vhosts are
 * written first and then tested and reloaded once (activities/vhost.ts `installVhosts`): a vhost that fails the
 * config test rolls the whole batch back and fails the activity with ConfigTestFailed, the server keeps serving
 * its previous config.
 */
export async function ensureSitesOnServer(input: EnsureSitesOnServerInput): Promise<EnsureSitesOnServerResult> {
  const server = parseInput(serverSchema, input.server, 'server');
  const platforms = parseInput(z.array(platformSchema), input.platforms, 'platforms');
  const sites = parseInput(z.array(siteSchema), input.sites, 'sites');
  const dbServers = parseInput(z.array(serverSchema), input.dbServers, 'dbServers');
  const heartbeat = boundHeartbeat();
  const repaired: string[] = [];
  const onPlatform = sites.flatMap((site) => {
    const platform = platforms.find((p) => p.name === site.platform);
    return platform ? [{ site, platform }] : [];
  });
  if (input.receivesCode) {
    // A few sites at once over the server's ssh connection: each is a handful of short round trips.
    let done = 0;
    const dirs = await allBounded(onPlatform, SITES_AT_ONCE, async ({ site, platform }) => {
      const dbServer = dbServers.find((d) => d.name === site.dbServer);
      const d = await ensureSiteDir({ server, site, platform, dbServer, uploads: input.uploads });
      heartbeat({ server: server.name, step: 'site dirs', done: ++done, of: onPlatform.length });
      return d.changed;
    });
    dirs.forEach((changed, i) => {
      if (changed) repaired.push(`site dir ${onPlatform[i]!.site.domain}`);
    });
  }
  const vhosts = await installVhosts({ server, sites: onPlatform }, (done) =>
    heartbeat({ server: server.name, step: 'vhosts', done, of: onPlatform.length }),
  );
  for (const v of vhosts) if (v.changed) repaired.push(`vhost ${v.domain}`);
  return { server: server.name, repaired, sites: onPlatform.length };
}

export interface ProbeSitesOnServerInput {
  server: Server;
  platforms: Platform[];
  sites: Site[];
  /** Stop at the first site that fails (the rolling update stops there anyway). @default false */
  stopAtFirstFailure?: boolean;
}

export interface ProbeSitesOnServerResult {
  server: string;
  /** Sites probed (a site on a platform that is not listed is skipped). */
  probed: number;
  /** Every failed probe, in order, with the probe's own detail (at most one with stopAtFirstFailure). */
  failures: { domain: string; status: number; detail: string }[];
}

/**
 * Probes every site through one server, each with its full probe (domain/site-probe.ts: what the install
 * workflows check), one after another, and reports the failures. A failed probe is a finding, not an error.
 */
export async function probeSitesOnServer(input: ProbeSitesOnServerInput): Promise<ProbeSitesOnServerResult> {
  const server = parseInput(serverSchema, input.server, 'server');
  const platforms = parseInput(z.array(platformSchema), input.platforms, 'platforms');
  const sites = parseInput(z.array(siteSchema), input.sites, 'sites');
  const heartbeat = boundHeartbeat();
  const failures: ProbeSitesOnServerResult['failures'] = [];
  let probed = 0;
  for (const site of sites) {
    const platform = platforms.find((p) => p.name === site.platform);
    if (!platform) continue;
    heartbeat({ server: server.name, probed, of: sites.length });
    const res = await probeSite({ server, site, platform, ...siteProbeSpec(site, platform) });
    probed++;
    if (!res.ok) {
      failures.push({ domain: site.domain, status: res.status, detail: res.detail });
      if (input.stopAtFirstFailure) break;
    }
  }
  return { server: server.name, probed, failures };
}
