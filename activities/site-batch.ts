/**
 * Per-site work on one server in one activity, for the workflows that go over every site of a group (ResyncCluster,
 * the rolling update's probes, a new member's probes). One activity per server instead of one or two per site
 * keeps those workflows' histories the same size whatever the number of sites (a resync of 1,000 sites on
 * 8 members was ~16,000 activities, over Temporal's 51,200-event limit): the history holds the inputs and a
 * summary, the activity heartbeats per site. AddClusterMember and RemoveClusterMember use the same batches for a new
 * or leaving member, with a snapshot (inspectSitesOnServer, inspectDatabasesOnServer) that one undo puts back.
 */
import { z } from 'zod';
import { platformSchema, serverSchema, siteSchema, type Platform, type Server, type Site } from '../domain/model';
import { domainName } from '../domain/fields';
import { siteProbeSpec } from '../domain/site-probe';
import { activityCancellationSignal, boundHeartbeat, heartbeatProgress } from './support/activity-context';
import { parseInput } from './support/activity-input';
import { allBounded } from '../common/settle';
import { probeSite } from './checks';
import { parseClients, readDatabaseAccounts, setDatabaseAccounts } from './database';
import { ensureSiteDir, removeSiteDir, type EnsureSiteDirInput } from './site-files';
import { inspectSite, installVhosts, restoreVhosts } from './vhost';

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
  const onPlatform = onListedPlatforms(sites, platforms);
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

/** The sites whose platform is listed, each with its platform (the others are skipped). */
function onListedPlatforms(sites: Site[], platforms: Platform[]): { site: Site; platform: Platform }[] {
  return sites.flatMap((site) => {
    const platform = platforms.find((p) => p.name === site.platform);
    return platform ? [{ site, platform }] : [];
  });
}

export interface SitesSnapshot {
  /** Sites whose directory existed. */
  siteDirs: string[];
  /** The vhosts that existed, with their content (a site not listed had none). */
  vhosts: { domain: string; content: string }[];
}

/**
 * What the sites look like on one server before a batch changes them (their site directories and vhosts): the
 * snapshot removeSitesFromServer puts back if the operation fails. Changes nothing. On a new member both lists are
 * usually empty, so the history holds little.
 */
export async function inspectSitesOnServer(input: {
  server: Server;
  platforms: Platform[];
  sites: Site[];
}): Promise<SitesSnapshot & { server: string }> {
  const server = parseInput(serverSchema, input.server, 'server');
  const platforms = parseInput(z.array(platformSchema), input.platforms, 'platforms');
  const sites = onListedPlatforms(parseInput(z.array(siteSchema), input.sites, 'sites'), platforms);
  const heartbeat = boundHeartbeat();
  let done = 0;
  const states = await allBounded(sites, SITES_AT_ONCE, async ({ site, platform }) => {
    const state = await inspectSite({ server, site, platform });
    heartbeat({ server: server.name, step: 'inspect', done: ++done, of: sites.length });
    return { domain: site.domain, ...state };
  });
  return {
    server: server.name,
    siteDirs: states.filter((s) => s.siteDirExists).map((s) => s.domain),
    vhosts: states.flatMap((s) => (s.vhost === null ? [] : [{ domain: s.domain, content: s.vhost }])),
  };
}

/**
 * Takes sites off one server: every vhost first (one config test, one reload: the server stops serving them before
 * anything else goes), then their site directories (no backup). With `keep` (a snapshot from inspectSitesOnServer)
 * it is the undo of a batch: the vhosts in the snapshot are put back as they were, the directories in it stay.
 * Idempotent. Uploads on a cluster's share are never touched (only the links to them go with the directory).
 */
export async function removeSitesFromServer(input: {
  server: Server;
  platforms: Platform[];
  sites: Site[];
  keep?: SitesSnapshot;
}): Promise<{ server: string; vhostsChanged: number; siteDirsRemoved: number }> {
  const server = parseInput(serverSchema, input.server, 'server');
  const platforms = parseInput(z.array(platformSchema), input.platforms, 'platforms');
  const sites = onListedPlatforms(parseInput(z.array(siteSchema), input.sites, 'sites'), platforms);
  const keep = parseInput(snapshotSchema, input.keep ?? { siteDirs: [], vhosts: [] }, 'keep');
  const heartbeat = boundHeartbeat();
  const previous = new Map(keep.vhosts.map((v) => [v.domain, v.content]));
  const vhosts = await restoreVhosts(
    { server, vhosts: sites.map(({ site }) => ({ domain: site.domain, previous: previous.get(site.domain) ?? null })) },
    (done) => heartbeat({ server: server.name, step: 'vhosts', done, of: sites.length }),
  );
  const dirs = sites.filter(({ site }) => !keep.siteDirs.includes(site.domain));
  let done = 0;
  const removed = await allBounded(dirs, SITES_AT_ONCE, async ({ site, platform }) => {
    const r = await removeSiteDir({ server, site, platform, backup: false });
    heartbeat({ server: server.name, step: 'site dirs', done: ++done, of: dirs.length });
    return r.removed;
  });
  return {
    server: server.name,
    vhostsChanged: vhosts.filter((v) => v.changed).length,
    siteDirsRemoved: removed.filter(Boolean).length,
  };
}

const snapshotSchema = z.object({
  siteDirs: z.array(z.string()),
  vhosts: z.array(z.object({ domain: z.string(), content: z.string() })),
});

/** Sites whose accounts one mysql call reads or changes (a batch heartbeats between calls). */
const DATABASES_AT_ONCE = 50;

/** A site's database accounts: the hosts its user may connect from. */
export interface DatabaseAccounts {
  domain: string;
  hosts: string[];
}

/**
 * The hosts each site's database user may connect from, on one database server (what ensureDatabasesOnServer
 * changes and setDatabaseAccountsOnServer puts back). Changes nothing.
 */
export async function inspectDatabasesOnServer(input: {
  dbServer: Server;
  sites: Pick<Site, 'domain'>[];
}): Promise<{ server: string; accounts: DatabaseAccounts[] }> {
  const dbServer = parseInput(serverSchema, input.dbServer, 'dbServer');
  const domains = parseInput(z.array(siteSchema.pick({ domain: true })), input.sites, 'sites').map((s) => s.domain);
  const signal = activityCancellationSignal();
  const accounts: DatabaseAccounts[] = [];
  for (const chunk of chunks(domains, DATABASES_AT_ONCE)) {
    accounts.push(...(await readDatabaseAccounts(dbServer, chunk, signal)));
    heartbeatProgress({ server: dbServer.name, step: 'inspect', done: accounts.length, of: domains.length });
  }
  return { server: dbServer.name, accounts };
}

/**
 * ensureDatabase for many sites on one database server: each site's database exists and its user has one account
 * per client address (others dropped), a few mysql calls instead of two per site. Returns the sites it changed.
 */
export async function ensureDatabasesOnServer(input: {
  dbServer: Server;
  sites: Pick<Site, 'domain'>[];
  clients: string[];
}): Promise<{ server: string; sites: number; changed: string[] }> {
  const dbServer = parseInput(serverSchema, input.dbServer, 'dbServer');
  const domains = parseInput(z.array(siteSchema.pick({ domain: true })), input.sites, 'sites').map((s) => s.domain);
  const clients = parseClients(input.clients, 'clients');
  const signal = activityCancellationSignal();
  const changed: string[] = [];
  let done = 0;
  for (const chunk of chunks(domains, DATABASES_AT_ONCE)) {
    const sites = chunk.map((domain) => ({ domain, hosts: clients }));
    const changes = await setDatabaseAccounts(dbServer, sites, { createDatabase: true }, signal);
    for (const c of changes) {
      if (!c.databaseExisted || c.addedHosts.length > 0 || c.removedHosts.length > 0) changed.push(c.domain);
    }
    done += chunk.length;
    heartbeatProgress({ server: dbServer.name, step: 'grants', done, of: domains.length });
  }
  return { server: dbServer.name, sites: domains.length, changed };
}

/**
 * Puts each site's database accounts back to exactly the hosts given (the snapshot of inspectDatabasesOnServer):
 * the undo of ensureDatabasesOnServer. Databases are kept (never dropped here). Idempotent.
 */
export async function setDatabaseAccountsOnServer(input: {
  dbServer: Server;
  accounts: DatabaseAccounts[];
}): Promise<{ server: string; sites: number }> {
  const dbServer = parseInput(serverSchema, input.dbServer, 'dbServer');
  const accounts = parseInput(
    z.array(z.object({ domain: domainName, hosts: z.array(z.string().min(1).max(255)) })),
    input.accounts,
    'accounts',
  );
  const signal = activityCancellationSignal();
  let done = 0;
  for (const chunk of chunks(accounts, DATABASES_AT_ONCE)) {
    await setDatabaseAccounts(dbServer, chunk, { createDatabase: false }, signal);
    done += chunk.length;
    heartbeatProgress({ server: dbServer.name, step: 'accounts', done, of: accounts.length });
  }
  return { server: dbServer.name, sites: accounts.length };
}

function chunks<T>(items: T[], size: number): T[][] {
  return Array.from({ length: Math.ceil(items.length / size) }, (_, i) => items.slice(i * size, (i + 1) * size));
}
