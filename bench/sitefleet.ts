/**
 * sitefleet's side of the benchmark: the real workflows, started through a real Temporal dev server and timed from
 * `workflow.start` to the result. Inputs are built from the bed's inventory the way the API resolves them.
 */
import { promises as fs } from 'node:fs';
import type { Client } from '@temporalio/client';
import { type Platform, type Server, serverInventorySchema, type Site } from '../domain/model';
import { clusterGroup, type WebGroup, WORKFLOW_TYPES, workflowIds } from '../domain/operations';
import { breakdownOf, type WorkflowBreakdown } from './history';
import type { RunOutcome } from './measure';

export interface SitefleetContext {
  client: Client;
  taskQueue: string;
  /** A workflow that has not finished after this long is failed (a hung workflow must not stall the bench). */
  workflowTimeoutMs: number;
}

export interface Timed<T> {
  seconds: number;
  result: T;
  /** Read from the history after the clock stopped; undefined if the history could not be read. */
  breakdown?: WorkflowBreakdown;
}

/** The bed's servers by name, parsed with sitefleet's own inventory schema (defaults applied). */
export async function readServers(inventoryFile: string): Promise<Map<string, Server>> {
  const inventory = serverInventorySchema.parse(JSON.parse(await fs.readFile(inventoryFile, 'utf8')));
  return new Map(inventory.servers.map((s) => [s.name, s]));
}

/** A cluster of `members`, every member a code receiver, fanned out to all of them at once. */
export function clusterGroupAllAtOnce(name: string, members: readonly Server[]): WebGroup {
  return clusterGroup(name, members, { maxParallel: Math.max(8, members.length) });
}

/** A WordPress platform on cluster `cluster` whose code comes from a directory on the worker. */
export function pathPlatform(name: string, cluster: string, source: string): Platform {
  return {
    name,
    target: { kind: 'cluster', name: cluster },
    source: { type: 'path', path: source },
    profile: 'wordpress',
  };
}

export function wordpressSite(domain: string, platform: string, dbServer: string): Site {
  return { domain, aliases: [], platform, dbServer, https: false, status: 'enabled' };
}

/** Starts `workflowType` and waits for its result; the time covers both. */
export async function timeWorkflow<T>(
  ctx: SitefleetContext,
  workflowType: string,
  workflowId: string,
  input: unknown,
): Promise<Timed<T>> {
  const started = performance.now();
  const handle = await ctx.client.workflow.start(workflowType, {
    taskQueue: ctx.taskQueue,
    workflowId,
    args: [input],
    workflowExecutionTimeout: ctx.workflowTimeoutMs,
  });
  const result = (await handle.result()) as T;
  const seconds = (performance.now() - started) / 1000;
  const breakdown = await handle.fetchHistory().then(breakdownOf, () => undefined);
  return { seconds, result, ...(breakdown ? { breakdown } : {}) };
}

/** Only the parts of the workflows' results the bench checks. */
interface PlatformOutcome {
  synced?: { server: string }[];
}
interface ResyncOutcome {
  ok?: boolean;
  nodes?: { server: string; ok: boolean; repaired: string[]; error?: string }[];
}
interface VerifyOutcome {
  ok?: boolean;
  nodes?: { server: string; ok: boolean; checks?: { name: string; ok: boolean; detail?: string }[] }[];
}
interface InstallOutcome {
  members?: { server: string; status: number }[];
}

let runCounter = 0;
/** Workflow ids stay unique across the runs of one bench (ids of finished workflows may be reused, but not mixed up). */
const suffix = (): string => `bench-${process.pid}-${++runCounter}`;

export async function createPlatformOnCluster(
  ctx: SitefleetContext,
  group: WebGroup,
  platform: Platform,
): Promise<RunOutcome> {
  const { seconds, result, breakdown } = await timeWorkflow<PlatformOutcome>(
    ctx,
    WORKFLOW_TYPES.createPlatformOnCluster,
    `${workflowIds.platform(platform.name)}/${suffix()}`,
    { platform, group },
  );
  const synced = result.synced?.length ?? 0;
  if (synced !== group.members.length) {
    throw new Error(`CreatePlatformOnCluster synced ${synced} of ${group.members.length} members`);
  }
  return { seconds, notes: [], breakdown };
}

export async function resyncCluster(
  ctx: SitefleetContext,
  group: WebGroup,
  platforms: Platform[],
  sites: Site[],
  dbServers: Server[],
): Promise<RunOutcome> {
  const { seconds, result, breakdown } = await timeWorkflow<ResyncOutcome>(
    ctx,
    WORKFLOW_TYPES.resyncCluster,
    `${workflowIds.resync('cluster', group.name)}/${suffix()}`,
    { group, platforms, sites, dbServers },
  );
  const failed = (result.nodes ?? []).filter((n) => !n.ok);
  if (result.ok === false || failed.length > 0) {
    throw new Error(`ResyncCluster failed on ${failed.map((n) => `${n.server}: ${n.error ?? '?'}`).join('; ')}`);
  }
  const repaired = (result.nodes ?? []).filter((n) => n.repaired.length > 0);
  return {
    seconds,
    notes: repaired.map((n) => `not a no-op: ${n.server} repaired ${n.repaired.join(', ')}`),
    breakdown,
  };
}

export async function verifyClusterNodes(
  ctx: SitefleetContext,
  group: WebGroup,
  platforms: Platform[],
  sites: Site[],
  dbServers: Server[],
): Promise<RunOutcome> {
  const { seconds, result, breakdown } = await timeWorkflow<VerifyOutcome>(
    ctx,
    WORKFLOW_TYPES.verifyClusterNodes,
    `${workflowIds.verify('cluster', group.name)}/${suffix()}`,
    { group, platforms, sites, dbServers },
  );
  const notes: string[] = [];
  if (result.ok !== true) {
    const problems = (result.nodes ?? []).flatMap((n) =>
      (n.checks ?? []).filter((c) => !c.ok).map((c) => `${n.server} ${c.name}: ${c.detail ?? 'failed'}`),
    );
    notes.push(
      `report not ok: ${problems.slice(0, 3).join('; ') || 'no detail'}${problems.length > 3 ? ` (+${problems.length - 3})` : ''}`,
    );
  }
  return { seconds, notes, breakdown };
}

export async function installSiteOnCluster(
  ctx: SitefleetContext,
  group: WebGroup,
  platform: Platform,
  site: Site,
  dbServer: Server,
): Promise<RunOutcome> {
  const { seconds, result, breakdown } = await timeWorkflow<InstallOutcome>(
    ctx,
    WORKFLOW_TYPES.installSiteOnCluster,
    `${workflowIds.site(site.domain)}/${suffix()}`,
    { site, platform, group, dbServer },
  );
  const bad = (result.members ?? []).filter((m) => m.status < 200 || m.status >= 400);
  if ((result.members?.length ?? 0) !== group.members.length || bad.length > 0) {
    throw new Error(`InstallSiteOnCluster answered ${JSON.stringify(result.members ?? [])}`);
  }
  return { seconds, notes: [], breakdown };
}
