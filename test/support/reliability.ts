/**
 * Parts of the reliability suite (test/reliability, test/reliability/long-cases.ts): a sitefleet worker in a child process
 * that can be SIGKILLed, a Temporal dev server of our own that can be restarted on the same SQLite file, a fixture
 * that puts them together with a test bed, and the probes the cases assert with — pending activities, activity
 * attempts from a workflow's history, the full text of every history, and what a platform or a site leaves on each
 * node and on the database server.
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { after, before } from 'node:test';
import { promisify } from 'node:util';
import { Client, Connection, type WorkflowHandle } from '@temporalio/client';
import { defaultPayloadConverter, type Payload } from '@temporalio/common';
import type { temporal } from '@temporalio/proto';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { siteDatabaseName } from '../../activities/database';
import { dbPasswordFor, wordpressAdminPasswordFor, workerSecret } from '../../activities/site-secrets';
import { loadSettings } from '../../config/settings';
import { startDevServer } from '../../devserver/dev-server';
import { ensureTemporalCli } from '../../devserver/temporal-cli';
import { serverInventorySchema, type Server } from '../../domain/model';
import type { Bed } from '../../testbed';
import type { ChildWorkerMessage } from '../../workers/child';
import { startTestBed, stopTestBed, type TestBedOptions } from './testbed';
import { startTestTemporal } from './temporal';
import { workflowBundle } from './worker';

const run = promisify(execFile);
const REPO_ROOT = resolve(__dirname, '..', '..');
const WORKER_CHILD = join(REPO_ROOT, 'workers', 'child.ts');
const READY_TIMEOUT_MS = 90_000;

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

// ---------------------------------------------------------------- the worker in a child process

export interface WorkerProcess {
  pid: number;
  /** Everything the worker printed (stdout and stderr), so far. */
  output(): string;
  /** Whether the process is still running. */
  running(): boolean;
  /**
   * SIGKILL to the worker's whole process group — the worker and every rsync and ssh client it started — as a
   * crash of the worker would. Resolves once the worker is gone.
   */
  crash(): Promise<void>;
  /** SIGTERM (the worker drains, grace 5 s), then SIGKILL if it is still there after 20 s. */
  stop(): Promise<void>;
}

const liveWorkers = new Set<ChildProcess>();
let exitHookInstalled = false;

/** Workers must not outlive the test process, whatever ends it. */
function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.on('exit', () => {
    for (const child of liveWorkers) if (child.pid !== undefined) killGroup(child.pid, 'SIGKILL');
  });
}

function killGroup(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(-pid, signal);
  } catch {
    // already gone
  }
}

export interface WorkerProcessOptions {
  address: string;
  namespace: string;
  taskQueue: string;
  /** A workflow bundle file (see writeWorkflowBundle). */
  bundlePath: string;
  /** The worker secret every worker of the installation shares. */
  secretFile: string;
}

/** Starts workers/child.ts in its own process group and resolves once it polls its task queue. */
export async function startWorkerProcess(opts: WorkerProcessOptions): Promise<WorkerProcess> {
  installExitHook();
  const child = spawn(
    process.execPath,
    [
      '--import',
      'tsx',
      WORKER_CHILD,
      '--address',
      opts.address,
      '--namespace',
      opts.namespace,
      '--task-queue',
      opts.taskQueue,
      '--bundle',
      opts.bundlePath,
    ],
    {
      cwd: REPO_ROOT,
      env: { ...process.env, SITEFLEET_SECRET_FILE: opts.secretFile },
      stdio: ['ignore', 'pipe', 'pipe', 'ipc'],
      detached: true,
    },
  );
  const pid = child.pid;
  if (pid === undefined) throw new Error('could not start the worker process');
  liveWorkers.add(child);
  let output = '';
  child.stdout?.on('data', (chunk: Buffer) => (output += chunk.toString('utf8')));
  child.stderr?.on('data', (chunk: Buffer) => (output += chunk.toString('utf8')));
  let exitedWith: string | undefined;
  const exited = new Promise<void>((resolveExit) =>
    child.once('exit', (code, signal) => {
      exitedWith = `${code ?? signal ?? '?'}`;
      liveWorkers.delete(child);
      resolveExit();
    }),
  );
  const worker: WorkerProcess = {
    pid,
    output: () => output,
    running: () => exitedWith === undefined,
    async crash() {
      killGroup(pid, 'SIGKILL');
      await exited;
    },
    async stop() {
      if (exitedWith !== undefined) return;
      child.kill('SIGTERM');
      const timer = setTimeout(() => killGroup(pid, 'SIGKILL'), 20_000);
      await exited;
      clearTimeout(timer);
    },
  };
  try {
    await new Promise<void>((resolveReady, reject) => {
      const timer = setTimeout(
        () => reject(new Error(`the worker did not poll within ${READY_TIMEOUT_MS / 1000} s:\n${output.slice(-2000)}`)),
        READY_TIMEOUT_MS,
      );
      child.on('message', (message: ChildWorkerMessage) => {
        clearTimeout(timer);
        if (message.type === 'ready') resolveReady();
        else if (message.type === 'error') reject(new Error(message.message));
      });
      void exited.then(() => {
        clearTimeout(timer);
        reject(new Error(`the worker exited (${exitedWith}) before it polled:\n${output.slice(-2000)}`));
      });
    });
  } catch (error) {
    await worker.crash();
    throw error;
  }
  return worker;
}

/** Bundles workflows/ (once per process) into `dir`/workflow-bundle.js for worker processes to load. */
export async function writeWorkflowBundle(dir: string): Promise<string> {
  const path = join(dir, 'workflow-bundle.js');
  writeFileSync(path, (await workflowBundle()).code);
  return path;
}

// ---------------------------------------------------------------- a dev server that survives restarts

/** A free TCP port on loopback (closed again: the caller binds it at once). */
export async function freePort(): Promise<number> {
  return new Promise((resolvePort, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() =>
        typeof address === 'object' && address ? resolvePort(address.port) : reject(new Error('no port')),
      );
    });
  });
}

export interface RestartableDevServer {
  address: string;
  namespace: string;
  /** The SQLite file that keeps every workflow across restarts. */
  dbFile: string;
  /**
   * Stops the server with `signal` (SIGTERM: a clean stop; SIGKILL: a crash), waits until it exited, stays down for
   * `downMs`, then starts it again on the same port and file and resolves once it answers.
   */
  restart(downMs?: number, signal?: NodeJS.Signals): Promise<{ stoppedInMs: number; downMs: number }>;
  stop(): Promise<void>;
}

/** `temporal server start-dev` on free ports with a SQLite file in `dataDir` (devserver/dev-server.ts). */
export async function startRestartableDevServer(dataDir: string): Promise<RestartableDevServer> {
  const cli = await ensureTemporalCli();
  const settings = loadSettings({
    SITEFLEET_DATA_DIR: dataDir,
    TEMPORAL_ADDRESS: `127.0.0.1:${await freePort()}`,
    SITEFLEET_UI_PORT: String(await freePort()),
  });
  let child: ChildProcess = await startDevServer(cli, settings);
  const stopChild = async (signal: NodeJS.Signals = 'SIGTERM'): Promise<void> => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise<void>((r) => child.once('exit', () => r()));
    child.kill(signal);
    const timer = setTimeout(() => child.kill('SIGKILL'), 20_000);
    await exited;
    clearTimeout(timer);
  };
  return {
    address: settings.temporalAddress,
    namespace: settings.namespace,
    dbFile: join(settings.dataDir, 'temporal.sqlite'),
    async restart(downMs = 2_000, signal: NodeJS.Signals = 'SIGTERM') {
      const started = Date.now();
      await stopChild(signal);
      const stoppedInMs = Date.now() - started;
      await sleep(downMs);
      child = await startDevServer(cli, settings);
      return { stoppedInMs, downMs: Date.now() - started };
    },
    stop: () => stopChild('SIGTERM'),
  };
}

// ---------------------------------------------------------------- the fixture

export interface CrashableFleet {
  bed: Bed;
  client: Client;
  address: string;
  namespace: string;
  taskQueue: string;
  /** The worker secret file (the test process derives the same passwords from it). */
  secretFile: string;
  /** Present with `restartableServer: true`. */
  devServer?: RestartableDevServer;
  /** The test environment, when the fixture did not start its own restartable server (for the API harness). */
  env?: TestWorkflowEnvironment;
  server(name: string): Server;
  /** The worker started last. */
  worker(): WorkerProcess;
  /** Starts one more worker process on the task queue (after a crash, the new worker resumes the work). */
  startWorker(): Promise<WorkerProcess>;
  /** Everything every worker of this fixture printed. */
  workerOutput(): string;
  start(workflowType: string, workflowId: string, input: unknown): Promise<WorkflowHandle>;
  /** Stops every worker, the Temporal server and the bed. */
  close(): Promise<void>;
}

export interface CrashableFleetOptions {
  /** Our own dev server on a SQLite file, which `devServer.restart()` restarts. @default false */
  restartableServer?: boolean;
}

/**
 * A test bed, a Temporal dev server and one sitefleet worker in a child process (more with `startWorker`). Stop it
 * all with `close()`; whatever started before a failure to start is stopped too.
 */
export async function startCrashableFleet(
  bedOptions: TestBedOptions,
  options: CrashableFleetOptions = {},
): Promise<CrashableFleet> {
  const dir = mkdtempSync(join(tmpdir(), 'sitefleet-reliability-'));
  const workers: WorkerProcess[] = [];
  const cleanups: (() => Promise<unknown>)[] = [async () => rmSync(dir, { recursive: true, force: true })];
  const close = async (): Promise<void> => {
    await Promise.allSettled(workers.map((w) => w.stop()));
    for (const cleanup of cleanups.splice(0).reverse()) await cleanup().catch(() => undefined);
  };
  try {
    const secretFile = join(dir, 'worker-secret');
    // The test process derives the same passwords as the workers: same file, created once, here.
    process.env.SITEFLEET_SECRET_FILE = secretFile;
    await workerSecret();
    const bundlePath = await writeWorkflowBundle(dir);
    const bed = await startTestBed(bedOptions);
    cleanups.push(() => stopTestBed(bed));
    let client: Client;
    let address: string;
    let namespace: string;
    let env: TestWorkflowEnvironment | undefined;
    let devServer: RestartableDevServer | undefined;
    if (options.restartableServer) {
      const server = await startRestartableDevServer(join(dir, 'temporal'));
      devServer = server;
      cleanups.push(() => server.stop());
      const connection = await Connection.connect({ address: server.address });
      cleanups.push(() => connection.close());
      client = new Client({ connection, namespace: server.namespace });
      address = server.address;
      namespace = server.namespace;
    } else {
      const started = await startTestTemporal();
      env = started;
      cleanups.push(() => started.teardown());
      client = started.client;
      address = started.address;
      namespace = started.namespace ?? 'default';
    }
    const inventory = serverInventorySchema.parse(JSON.parse(readFileSync(bed.paths.inventoryFile, 'utf8')));
    const servers = new Map(inventory.servers.map((s) => [s.name, s]));
    const taskQueue = `reliability-${process.pid}-${Date.now()}`;
    const startWorker = async (): Promise<WorkerProcess> => {
      const worker = await startWorkerProcess({ address, namespace, taskQueue, bundlePath, secretFile });
      workers.push(worker);
      return worker;
    };
    await startWorker();
    return {
      bed,
      client,
      address,
      namespace,
      taskQueue,
      secretFile,
      ...(devServer ? { devServer } : {}),
      ...(env ? { env } : {}),
      server(name) {
        const s = servers.get(name);
        if (!s) throw new Error(`no server ${name} in the bed inventory`);
        return s;
      },
      worker: () => workers[workers.length - 1] as WorkerProcess,
      startWorker,
      workerOutput: () => workers.map((w) => w.output()).join('\n'),
      start: (workflowType, workflowId, input) =>
        client.workflow.start(workflowType, {
          taskQueue,
          workflowId,
          args: [input],
          workflowIdConflictPolicy: 'FAIL',
        }),
      close,
    };
  } catch (error) {
    await close();
    throw error;
  }
}

/** startCrashableFleet in `before`, close in `after`: the fleet of one test file. */
export function useCrashableFleet(
  bedOptions: TestBedOptions,
  options: CrashableFleetOptions = {},
): () => CrashableFleet {
  let fleet: CrashableFleet | undefined;
  before(async () => {
    fleet = await startCrashableFleet(bedOptions, options);
  });
  after(async () => {
    await fleet?.close();
  });
  return () => {
    if (!fleet) throw new Error('the fleet is not up: use it inside a test');
    return fleet;
  };
}

// ---------------------------------------------------------------- what a workflow is doing, and did

export interface PendingActivity {
  type: string;
  state: 'scheduled' | 'started' | 'cancel-requested' | 'unknown';
  attempt: number;
  /** The last heartbeat's details (rsync: `{ server, items, last }`). */
  heartbeat?: unknown;
}

const PENDING_STATES = { 1: 'scheduled', 2: 'started', 3: 'cancel-requested' } as const;

export async function pendingActivities(handle: WorkflowHandle): Promise<PendingActivity[]> {
  const { raw } = await handle.describe();
  return (raw.pendingActivities ?? []).map((p) => {
    const details = p.heartbeatDetails?.payloads?.[0];
    return {
      type: p.activityType?.name ?? '',
      state: PENDING_STATES[Number(p.state) as 1 | 2 | 3] ?? 'unknown',
      attempt: p.attempt ?? 1,
      ...(details ? { heartbeat: defaultPayloadConverter.fromPayload(details as Payload) } : {}),
    };
  });
}

/**
 * Polls the workflow's pending activities (every 50 ms) until `ready` accepts them; returns them. Throws when the
 * workflow closes first or `timeoutMs` passes, naming what was pending last.
 */
export async function waitForPending(
  handle: WorkflowHandle,
  ready: (pending: PendingActivity[]) => boolean,
  timeoutMs = 120_000,
): Promise<PendingActivity[]> {
  const deadline = Date.now() + timeoutMs;
  let last: PendingActivity[] = [];
  while (Date.now() < deadline) {
    last = await pendingActivities(handle);
    if (ready(last)) return last;
    const { status } = await handle.describe();
    if (status.name !== 'RUNNING')
      throw new Error(`${handle.workflowId} closed (${status.name}) before the moment came`);
    await sleep(50);
  }
  throw new Error(`timed out waiting on ${handle.workflowId}; pending: ${JSON.stringify(last)}`);
}

/** Polls `condition` every 100 ms until it holds; throws after `timeoutMs`. */
export async function waitFor(condition: () => Promise<boolean>, timeoutMs = 120_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`condition not met within ${timeoutMs} ms`);
    await sleep(100);
  }
}

/** Every pending activity is of `type` and started (at least one is). */
export const onlyStarted =
  (type: string) =>
  (pending: PendingActivity[]): boolean =>
    pending.length > 0 && pending.every((p) => p.type === type && p.state === 'started');

export interface ActivityRun {
  type: string;
  /** The server the activity acted on (`server`, `slave` or `dbServer` of its input), if any. */
  server?: string;
  /** The attempt that ended the activity (1: it never needed a retry). */
  attempt: number;
  outcome: 'completed' | 'failed' | 'timed-out' | 'cancelled' | 'running';
  /** Why the previous attempt ended (a timeout after a crash, a failure), when attempt > 1. */
  lastFailure?: string;
}

type HistoryEvent = temporal.api.history.v1.IHistoryEvent;

function serverOfInput(payload: Payload | undefined): string | undefined {
  if (!payload) return undefined;
  const input = defaultPayloadConverter.fromPayload(payload) as Record<string, { name?: string } | undefined>;
  return input.server?.name ?? input.slave?.name ?? input.dbServer?.name;
}

const TIMEOUT_TYPES: Record<number, string> = {
  1: 'start-to-close timeout',
  2: 'schedule-to-start timeout',
  3: 'schedule-to-close timeout',
  4: 'heartbeat timeout',
};

function describeFailure(failure: temporal.api.failure.v1.IFailure | null | undefined): string | undefined {
  if (!failure) return undefined;
  const timeout = failure.timeoutFailureInfo?.timeoutType;
  if (timeout !== undefined && timeout !== null) return TIMEOUT_TYPES[Number(timeout)] ?? `timeout ${String(timeout)}`;
  return (failure.message ?? 'failed').replace(/\s+/g, ' ').trim();
}

/** Every activity of a workflow run, from its history: type, server, the attempt that ended it, and how. */
export async function activityRuns(handle: WorkflowHandle): Promise<ActivityRun[]> {
  const { events } = await handle.fetchHistory();
  const byScheduledId = new Map<string, ActivityRun>();
  const key = (id: unknown): string => String(id);
  for (const e of (events ?? []) as HistoryEvent[]) {
    const scheduled = e.activityTaskScheduledEventAttributes;
    if (scheduled) {
      byScheduledId.set(key(e.eventId), {
        type: scheduled.activityType?.name ?? '',
        server: serverOfInput(scheduled.input?.payloads?.[0] as Payload | undefined),
        attempt: 1,
        outcome: 'running',
      });
    }
    const started = e.activityTaskStartedEventAttributes;
    const run = byScheduledId.get(
      key(
        started?.scheduledEventId ??
          e.activityTaskCompletedEventAttributes?.scheduledEventId ??
          e.activityTaskFailedEventAttributes?.scheduledEventId ??
          e.activityTaskTimedOutEventAttributes?.scheduledEventId ??
          e.activityTaskCanceledEventAttributes?.scheduledEventId,
      ),
    );
    if (!run) continue;
    if (started) {
      run.attempt = started.attempt ?? 1;
      const last = describeFailure(started.lastFailure);
      if (last) run.lastFailure = last;
    }
    if (e.activityTaskCompletedEventAttributes) run.outcome = 'completed';
    if (e.activityTaskFailedEventAttributes) run.outcome = 'failed';
    if (e.activityTaskTimedOutEventAttributes) run.outcome = 'timed-out';
    if (e.activityTaskCanceledEventAttributes) run.outcome = 'cancelled';
  }
  return [...byScheduledId.values()];
}

/** The `type` of a failure and of every cause beneath it (workflow failure, activity failure, application failure). */
export function failureTypes(err: unknown): string[] {
  const types: string[] = [];
  for (let e = err as { type?: unknown; name?: string; cause?: unknown } | undefined; e; e = e.cause as typeof e) {
    types.push(typeof e.type === 'string' ? e.type : (e.name ?? '?'));
  }
  return types;
}

/** `type@server` of every activity that needed more than one attempt, with its attempt count and cause. */
export function retried(runs: ActivityRun[]): string[] {
  return runs
    .filter((r) => r.attempt > 1)
    .map((r) => `${r.type}@${r.server ?? '-'} attempt ${r.attempt} after ${r.lastFailure ?? '?'}`);
}

// ---------------------------------------------------------------- secrets in histories and logs

/** Every string in a value, with byte arrays (payload data) decoded as UTF-8. */
function textOf(value: unknown, into: string[]): void {
  if (value === null || value === undefined) return;
  if (typeof value === 'string') into.push(value);
  else if (value instanceof Uint8Array) into.push(Buffer.from(value).toString('utf8'));
  else if (Array.isArray(value)) for (const v of value) textOf(v, into);
  else if (typeof value === 'object') for (const v of Object.values(value as Record<string, unknown>)) textOf(v, into);
}

/**
 * The text of every workflow history the server holds — failure messages, stack traces, and every payload (inputs,
 * results, heartbeat details, search attributes) decoded — one entry per run.
 */
export async function everyHistoryText(client: Client): Promise<{ workflowId: string; runId: string; text: string }[]> {
  const out: { workflowId: string; runId: string; text: string }[] = [];
  for await (const wf of client.workflow.list()) {
    const history = await client.workflow.getHandle(wf.workflowId, wf.runId).fetchHistory();
    const parts: string[] = [];
    textOf(history, parts);
    out.push({ workflowId: wf.workflowId, runId: wf.runId, text: parts.join('\n') });
  }
  return out;
}

/** The derived secrets of each domain: database password and WordPress admin password. */
export async function secretsOf(domains: string[]): Promise<{ name: string; value: string }[]> {
  const out: { name: string; value: string }[] = [];
  for (const domain of domains) {
    out.push({ name: `database password of ${domain}`, value: await dbPasswordFor(domain) });
    out.push({ name: `WordPress admin password of ${domain}`, value: await wordpressAdminPasswordFor(domain) });
  }
  return out;
}

/** Where any of `secrets` appears in `texts` (`secret name in text name`); empty when nowhere. */
export function secretLeaks(
  texts: { name: string; text: string }[],
  secrets: { name: string; value: string }[],
): string[] {
  return texts.flatMap((t) => secrets.filter((s) => t.text.includes(s.value)).map((s) => `${s.name} in ${t.name}`));
}

// ---------------------------------------------------------------- state of nodes and the database server

/**
 * Every entry of a platform tree (`f path size`, `l path target`, `d path`), without sites/ and sitefleet's own
 * files beside the code (wp-config.php, the dispatcher; sitefleet-health.php, the health script).
 */
const MANIFEST_SCRIPT = `cd "$1" && find . -mindepth 1 \\( -path ./sites -o -path ./wp-config.php -o -path ./sitefleet-health.php \\) -prune -o \\( -type f -printf 'f %P %s\\n' \\) -o \\( -type l -printf 'l %P %l\\n' \\) -o \\( -type d -printf 'd %P\\n' \\) | LC_ALL=C sort`;

/** The platform tree on a host, as MANIFEST_SCRIPT lists it. */
export async function platformManifest(bed: Bed, host: string, root: string): Promise<string> {
  return (await bed.exec(host, ['sh', '-c', MANIFEST_SCRIPT, 'manifest', root])).stdout;
}

/** The same listing of a local source tree. */
export async function sourceManifest(root: string): Promise<string> {
  return (await run('sh', ['-c', MANIFEST_SCRIPT, 'manifest', root], { maxBuffer: 64 * 1024 * 1024 })).stdout;
}

/** Lines of `a` missing from `b` and lines of `b` missing from `a`, for a readable assertion message. */
export function manifestDiff(expected: string, actual: string): { missing: string[]; extra: string[] } {
  const e = new Set(expected.split('\n').filter(Boolean));
  const a = new Set(actual.split('\n').filter(Boolean));
  return { missing: [...e].filter((l) => !a.has(l)).slice(0, 10), extra: [...a].filter((l) => !e.has(l)).slice(0, 10) };
}

/** A site on one web node: its vhost files (and any leftover temp file), directory and settings file. */
export async function siteOnNode(bed: Bed, host: string, domain: string, platform: string): Promise<string> {
  const script = `vhosts=/var/aegir/config/server_$1/nginx/vhost.d
ls -A "$vhosts" | grep -F -- "$2" | sed 's/^/vhost /' || true
ls -A "$vhosts" | grep '^\\.' | sed 's/^/temp /' || true
[ -d "/var/aegir/platforms/$3/sites/$2" ] && echo "dir $2"
[ -f "/var/aegir/platforms/$3/sites/$2/wp-config.php" ] && echo settings
true`;
  return (await bed.exec(host, ['sh', '-c', script, 'site-on-node', host, domain, platform])).stdout;
}

/** A site on the database server: its databases, the hosts its user may connect from, its WordPress users. */
export async function siteOnDatabase(
  bed: Bed,
  dbHost: string,
  domain: string,
): Promise<{ databases: number; userHosts: string[]; wordpressUsers: number | null }> {
  const name = siteDatabaseName(domain);
  const sql = (query: string) =>
    bed.exec(dbHost, ['mysql', '--batch', '--skip-column-names', '-e', query]).then((r) => r.stdout.trim());
  const databases = Number(await sql(`SELECT COUNT(*) FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = '${name}'`));
  const hosts = await sql(`SELECT Host FROM mysql.user WHERE User = '${name}' ORDER BY Host`);
  const tables = Number(
    await sql(
      `SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = '${name}' AND TABLE_NAME = 'wp_users'`,
    ),
  );
  const wordpressUsers = tables === 1 ? Number(await sql(`SELECT COUNT(*) FROM \`${name}\`.wp_users`)) : null;
  return { databases, userHosts: hosts ? hosts.split('\n') : [], wordpressUsers };
}

/** Every file under `roots` on a host changed after `marker` (a file the test touched before acting). */
export async function changedSince(bed: Bed, host: string, marker: string, roots: string[]): Promise<string[]> {
  const r = await bed.exec(host, ['find', ...roots, '-xdev', '-newer', marker, '-print'], { check: false });
  return r.stdout.split('\n').filter(Boolean);
}

/**
 * What sites leave on a group and its database server: each web node's vhost files and site directories, and the
 * databases and accounts on the database server. Equal snapshots before and after a failed operation mean it left
 * nothing behind.
 */
export async function groupSnapshot(
  bed: Bed,
  hosts: string[],
  dbHost: string,
  platforms: string[] = ['wp'],
): Promise<Record<string, string>> {
  const state: Record<string, string> = {};
  for (const host of hosts) {
    const dirs = [
      `/var/aegir/config/server_${host}/nginx/vhost.d`,
      ...platforms.map((p) => `/var/aegir/platforms/${p}/sites`),
    ];
    state[host] = (await bed.exec(host, ['sh', '-c', 'ls -A "$@" 2>&1', 'ls', ...dirs], { check: false })).stdout;
  }
  state[dbHost] = (
    await bed.exec(dbHost, [
      'mysql',
      '--batch',
      '-e',
      'SHOW DATABASES; SELECT user, host FROM mysql.user ORDER BY user, host',
    ])
  ).stdout;
  return state;
}

/** nginx on a node: its master PID, its worker PIDs (a reload replaces them) and the `[emerg]` lines of its log. */
export async function nginxState(bed: Bed, host: string): Promise<{ master: string; workers: string; emerg: string }> {
  const script = `master=$(cat /run/nginx.pid)
echo "$master"
ps -o pid= --ppid "$master" | tr -d ' ' | sort | tr '\n' ' '
echo
grep -h emerg /var/log/nginx/error.log 2>/dev/null | tr '\n' '|' || true`;
  const [master = '', workers = '', emerg = ''] = (await bed.exec(host, ['sh', '-c', script])).stdout.split('\n');
  return { master, workers: workers.trim(), emerg };
}
