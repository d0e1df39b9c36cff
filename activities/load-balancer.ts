/**
 * A cluster's load balancer (haproxy on a server with an `lb` service): sitefleet owns one managed block of its
 * config per cluster (a frontend routing by Host, one backend per enabled site with every member and a health check
 * of that site), tests the whole file with `haproxy -c` before a reload, and drains or readies members through the
 * block's admin socket (no reload, so in-flight requests finish on the member they started on).
 */
import { z } from 'zod';
import { resourceName } from '../domain/fields';
import { platformSchema, serverSchema, siteSchema, type Platform, type Server, type Site } from '../domain/model';
import { siteHealthSpec } from '../domain/site-probe';
import { activityCancellationSignal, heartbeatProgress } from './support/activity-context';
import { parseInput } from './support/activity-input';
import { badInput, FailureType, permanentFailure, transientFailure } from '../common/failures';
import { ensureManagedBlock, readManagedBlock, removeManagedBlock } from './transport/managed-block';
import { editRemoteFile, readRemoteFile } from './transport/remote-file';
import { lbBackendName, renderHaproxyCluster } from './render';
import { runRemote } from './transport/ssh-command';

const LB_COMMAND_TIMEOUT_MS = 30_000;

type LbService = NonNullable<Server['lb']>;

function lbService(lb: Server): LbService {
  if (!lb.lb) throw badInput(`loadBalancer: server ${lb.name} has no lb service`);
  return lb.lb;
}

const marker = (cluster: string): string => `sitefleet:cluster:${cluster}`;

/** The admin socket of the cluster's block (one per cluster, so two clusters on one LB do not share it). */
export const lbSocketPath = (cluster: string): string => `/run/haproxy/sitefleet-${cluster}.sock`;

/** The sites a cluster's LB routes: enabled ones only (a disabled site gets haproxy's 503, like its vhost). */
export function lbSites(sites: Site[], platforms: Platform[]) {
  return sites
    .filter((s) => s.status === 'enabled')
    .map((site) => {
      const platform = platforms.find((p) => p.name === site.platform);
      if (!platform) throw badInput(`sites: ${site.domain} is on platform ${site.platform}, which is not listed`);
      const spec = siteHealthSpec(site, platform);
      return { domain: site.domain, aliases: site.aliases, checkPath: spec.path, checkStatus: spec.expectStatus };
    })
    .sort((a, b) => a.domain.localeCompare(b.domain));
}

export interface ConfigureLoadBalancerInput {
  lb: Server;
  cluster: string;
  /** The members that serve (every member in rotation). */
  members: Server[];
  /** Every site of the cluster; disabled ones are left out. */
  sites: Site[];
  platforms: Platform[];
}

export interface LoadBalancerChange {
  lb: string;
  /** The cluster's block before the change (null: there was none); a compensation passes it to restoreLoadBalancer. */
  previous: string | null;
  changed: boolean;
}

const configureSchema = z
  .object({
    lb: serverSchema,
    cluster: resourceName,
    members: z.array(serverSchema),
    sites: z.array(siteSchema),
    platforms: z.array(platformSchema),
  })
  .strict();

/** `haproxy -c` on the LB's config file; ConfigTestFailed quoting its output when it fails. */
async function testConfig(lb: Server, file: string, signal?: AbortSignal): Promise<{ ok: boolean; output: string }> {
  const res = await runRemote(lb, ['haproxy', '-c', '-f', file], {
    timeoutMs: LB_COMMAND_TIMEOUT_MS,
    signal,
    allowExitCodes: 'any',
  });
  if (res.code === 127) {
    throw permanentFailure(FailureType.ServerNotReady, `server ${lb.name}: haproxy is not installed`);
  }
  return { ok: res.code === 0, output: `${res.stderr}${res.stdout}`.trim() };
}

/** Sends one command to the cluster's admin socket (by stdin: nothing is pasted into a command line). */
async function adminCommand(lb: Server, cluster: string, command: string, signal?: AbortSignal): Promise<string> {
  const res = await runRemote(lb, ['socat', '-t', '5', 'stdio', `UNIX-CONNECT:${lbSocketPath(cluster)}`], {
    timeoutMs: LB_COMMAND_TIMEOUT_MS,
    stdin: `${command}\n`,
    signal,
    allowExitCodes: 'any',
    describe: `haproxy admin socket: ${command.split(' ').slice(0, 3).join(' ')}`,
  });
  if (res.code === 127) {
    throw permanentFailure(FailureType.ServerNotReady, `server ${lb.name}: socat is not installed`);
  }
  if (res.code !== 0) {
    throw transientFailure(
      FailureType.RemoteCommandFailed,
      `server ${lb.name}: haproxy's admin socket for cluster ${cluster} did not answer: ${res.stderr.trim()}`,
    );
  }
  return res.stdout;
}

export interface LbServerState {
  backend: string;
  server: string;
  /** haproxy's status: UP, DOWN, DRAIN, MAINT, no check ... */
  status: string;
  /** Current sessions on this server. */
  sessions: number;
  /** The last health check's outcome as haproxy reports it. */
  check: string;
}

/** Every (backend, server) of the cluster's block as the running haproxy sees it, from `show stat`. */
async function showStat(lb: Server, cluster: string, signal?: AbortSignal): Promise<LbServerState[]> {
  const csv = await adminCommand(lb, cluster, 'show stat', signal);
  const lines = csv.split('\n').filter((l) => l.trim() !== '');
  const header = (lines[0] ?? '').replace(/^# /, '').split(',');
  const col = (name: string) => header.indexOf(name);
  const [pxname, svname, status, scur, checkStatus, checkDesc] = [
    col('pxname'),
    col('svname'),
    col('status'),
    col('scur'),
    col('check_status'),
    col('check_desc'),
  ];
  if ([pxname, svname, status, scur].some((i) => i < 0)) {
    throw transientFailure(FailureType.RemoteCommandFailed, `server ${lb.name}: unexpected "show stat" answer`);
  }
  const prefix = `sitefleet_${cluster}_`;
  return lines
    .slice(1)
    .map((l) => l.split(','))
    .filter((f) => (f[pxname] ?? '').startsWith(prefix) && !['FRONTEND', 'BACKEND'].includes(f[svname] ?? ''))
    .map((f) => ({
      backend: f[pxname] ?? '',
      server: f[svname] ?? '',
      status: f[status] ?? '',
      sessions: Number(f[scur] ?? 0),
      check: [f[checkStatus] ?? '', f[checkDesc] ?? ''].filter(Boolean).join(' '),
    }));
}

/** Reloads haproxy gracefully and waits until the running process has exactly the block's backends. */
async function reloadAndWait(lb: Server, cluster: string, backends: string[], signal?: AbortSignal): Promise<void> {
  await runRemote(lb, ['service', 'haproxy', 'reload'], { timeoutMs: LB_COMMAND_TIMEOUT_MS, signal });
  const want = [...backends].sort().join(' ');
  let seen = '';
  for (let i = 0; i < 50; i++) {
    try {
      const stat = await showStat(lb, cluster, signal);
      seen = [...new Set(stat.map((s) => s.backend))].sort().join(' ');
      if (seen === want) return;
    } catch (err) {
      // the new process may not have opened the socket yet
      seen = String(err);
    }
    await new Promise((r) => setTimeout(r, 200));
  }
  throw transientFailure(
    FailureType.RemoteCommandFailed,
    `server ${lb.name}: after the reload haproxy runs backends [${seen}], not [${want}]`,
  );
}

/** Writes `block` (null: removes it) as the cluster's managed block, tests the file, reloads when it changed. */
async function putBlock(
  lb: Server,
  cluster: string,
  block: string | null,
  backends: string[],
  signal?: AbortSignal,
): Promise<LoadBalancerChange> {
  const { configFile } = lbService(lb);
  let previous: string | null = null;
  const edit = await editRemoteFile(
    lb,
    configFile,
    (current) => {
      previous = current === null ? null : readManagedBlock(current, marker(cluster));
      if (current === null) {
        throw permanentFailure(FailureType.ServerNotReady, `server ${lb.name}: ${configFile} does not exist`);
      }
      return block === null
        ? removeManagedBlock(current, marker(cluster))
        : ensureManagedBlock(current, marker(cluster), block);
    },
    { signal },
  );
  const test = await testConfig(lb, configFile, signal);
  if (!test.ok) {
    if (edit.changed && edit.previous !== null) {
      const before = edit.previous;
      await editRemoteFile(lb, configFile, () => before, { signal });
    }
    throw permanentFailure(
      FailureType.ConfigTestFailed,
      `server ${lb.name}: haproxy -c refused the config for cluster ${cluster}; the previous config is back: ${test.output}`,
    );
  }
  // Reload on a retry too: the first attempt may have written the file and died before reloading.
  if (block === null)
    await runRemote(lb, ['service', 'haproxy', 'reload'], { timeoutMs: LB_COMMAND_TIMEOUT_MS, signal });
  else await reloadAndWait(lb, cluster, backends, signal);
  return { lb: lb.name, previous, changed: edit.changed };
}

/**
 * Renders the cluster's block from the members and enabled sites, writes it into the LB's haproxy config, runs
 * `haproxy -c` on the whole file (a refused config is put back and fails with ConfigTestFailed) and reloads
 * gracefully: the old process finishes its in-flight requests, the new one takes new connections.
 */
export async function configureLoadBalancer(input: ConfigureLoadBalancerInput): Promise<LoadBalancerChange> {
  const signal = activityCancellationSignal();
  const v = parseInput(configureSchema, input, 'load balancer');
  const { port } = lbService(v.lb);
  const sites = lbSites(v.sites, v.platforms);
  const block = renderHaproxyCluster({
    cluster: v.cluster,
    port,
    socket: lbSocketPath(v.cluster),
    members: v.members,
    sites,
  });
  return putBlock(
    v.lb,
    v.cluster,
    block,
    sites.map((s) => lbBackendName(v.cluster, s.domain)),
    signal,
  );
}

/** Puts the cluster's block back as it was (null: removes it), tested and reloaded. The undo of configureLoadBalancer. */
export async function restoreLoadBalancer(input: {
  lb: Server;
  cluster: string;
  previous: string | null;
}): Promise<LoadBalancerChange> {
  const signal = activityCancellationSignal();
  const lb = parseInput(serverSchema, input.lb, 'lb');
  const cluster = parseInput(resourceName, input.cluster, 'cluster');
  const backends =
    input.previous === null ? [] : [...input.previous.matchAll(/^backend (\S+)$/gm)].map((m) => m[1] as string);
  if (input.previous === null && (await readRemoteFile(lb, lbService(lb).configFile, { signal })) === null) {
    return { lb: lb.name, previous: null, changed: false };
  }
  return putBlock(lb, cluster, input.previous, backends, signal);
}

/** Removes the cluster's block from its LB (the cluster no longer has this LB). */
export async function removeLoadBalancer(input: { lb: Server; cluster: string }): Promise<LoadBalancerChange> {
  return restoreLoadBalancer({ ...input, previous: null });
}

export interface MemberStateInput {
  lb: Server;
  cluster: string;
  member: string;
  /** drain: no new requests (in-flight ones finish); ready: back in rotation. */
  state: 'drain' | 'ready';
}

/** Drains or readies a member in every backend of the cluster through the admin socket (no reload). */
export async function setLoadBalancerMember(input: MemberStateInput): Promise<{ backends: string[] }> {
  const signal = activityCancellationSignal();
  const lb = parseInput(serverSchema, input.lb, 'lb');
  const cluster = parseInput(resourceName, input.cluster, 'cluster');
  const member = parseInput(resourceName, input.member, 'member');
  const state = parseInput(z.enum(['drain', 'ready']), input.state, 'state');
  const backends = (await showStat(lb, cluster, signal)).filter((s) => s.server === member).map((s) => s.backend);
  for (const backend of backends) {
    const out = await adminCommand(lb, cluster, `set server ${backend}/${member} state ${state}`, signal);
    if (out.trim() !== '') {
      throw transientFailure(FailureType.RemoteCommandFailed, `server ${lb.name}: ${backend}/${member}: ${out.trim()}`);
    }
  }
  return { backends };
}

/**
 * Waits until the LB has no session left on a drained member (in-flight requests finished), polling `show stat`
 * and heartbeating. Fails (retryable) after `timeoutSeconds` with the count still open.
 */
export async function waitLoadBalancerMemberIdle(input: {
  lb: Server;
  cluster: string;
  member: string;
  timeoutSeconds: number;
}): Promise<{ waitedMs: number }> {
  const signal = activityCancellationSignal();
  const lb = parseInput(serverSchema, input.lb, 'lb');
  const started = Date.now();
  for (;;) {
    const sessions = (await showStat(lb, input.cluster, signal))
      .filter((s) => s.server === input.member)
      .reduce((n, s) => n + s.sessions, 0);
    heartbeatProgress({ sessions });
    if (sessions === 0) return { waitedMs: Date.now() - started };
    if (Date.now() - started > input.timeoutSeconds * 1000) {
      throw transientFailure(
        FailureType.RemoteCommandTimeout,
        `server ${lb.name}: member ${input.member} still has ${sessions} request(s) in flight after ${input.timeoutSeconds}s`,
      );
    }
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** haproxy's status while a health check is moving a server between UP and DOWN, e.g. "UP 1/2", "DOWN 1/2". */
const TRANSITIONAL_STATUS = /^(UP|DOWN) \d+\/\d+$/;
/** The rendered health checks run every 2 s with rise 2 / fall 2: a transition settles within two intervals. */
const SETTLE_READS = 4;
const SETTLE_PAUSE_MS = 2_000;

/**
 * What the running haproxy thinks of each member, per site backend of the cluster (for verification). A server
 * in the middle of a transition is read again after a check interval (a few times at most), so the report says
 * where it settled rather than where a check happened to be; one still moving after that is reported as it is.
 */
export async function inspectLoadBalancer(input: { lb: Server; cluster: string }): Promise<LbServerState[]> {
  const signal = activityCancellationSignal();
  const lb = parseInput(serverSchema, input.lb, 'lb');
  const cluster = parseInput(resourceName, input.cluster, 'cluster');
  let view = await showStat(lb, cluster, signal);
  for (let i = 0; i < SETTLE_READS && view.some((s) => TRANSITIONAL_STATUS.test(s.status)); i++) {
    await new Promise((r) => setTimeout(r, SETTLE_PAUSE_MS));
    view = await showStat(lb, cluster, signal);
  }
  return view;
}
