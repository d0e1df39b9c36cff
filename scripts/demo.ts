/**
 * `npm run demo`: sitefleet doing its job on this machine, from nothing.
 *
 * It starts sitefleet (`npm start`: the Temporal dev server and Web UI unless TEMPORAL_ADDRESS already answers, the
 * worker, the API) with its own data directory, brings up seven test hosts in network namespaces (three nginx web
 * servers for a cluster, three for a pack whose master also exports the code with nfs-ganesha, one MariaDB), and
 * then, only through the API: registers the servers, creates a 3-node cluster and a 1+2 pack (sshfs clients),
 * a WordPress platform and a site on each, sets up the pack's share, deploys, installs, and verifies every node,
 * printing per-node progress. It leaves everything running until Ctrl-C or SIGTERM, then stops sitefleet and
 * removes the test hosts. Linux and root only (the test hosts are namespaces).
 *
 * | variable | default | meaning |
 * |---|---|---|
 * | SITEFLEET_DATA_DIR | .data/demo | the demo's data directory (its inventory is replaced at every start) |
 * | SITEFLEET_DEMO_BED | demo | name of the test-host bed |
 * | SITEFLEET_DEMO_SUBNET | 10.231.0.0/24 | the bed's subnet |
 * | SITEFLEET_DEMO_EXIT_AFTER_SETUP | (unset) | 1: clean up and exit after setup (0 when every check passed) |
 * | SITEFLEET_API_PORT, TEMPORAL_ADDRESS, SITEFLEET_UI_PORT, ... | | as for `npm start` (config/settings.ts) |
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, existsSync, mkdirSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join, relative, resolve } from 'node:path';
import { ApiClient, seg } from '../cli/api-client';
import { applyFileSchema, executePlan, formatPlan, planApply } from '../cli/apply';
import { describeStart, watchOperation } from '../cli/watch';
import { loadSettings, type Settings } from '../config/settings';
import { temporalAnswers } from '../devserver/dev-server';
import { serverInventorySchema } from '../domain/model';
import type { OperationStarted } from '../api/schemas';
import {
  assertBedSupported,
  bedPaths,
  DEFAULT_SUBNET,
  defaultBaseDir,
  downBed,
  processExists,
  readState,
  startBed,
  type Bed,
  type HostOptions,
} from '../testbed';
import type { VerifyReport } from '../workflows/verify';
import { messageOf } from '../common/error-message';

const REPO_ROOT = resolve(__dirname, '..');
const WORDPRESS = '/usr/share/wordpress';
/** Marks a data directory as the demo's own, so that its inventory may be replaced at the next start. */
const MARKER = '.sitefleet-demo';
/** How long sitefleet may take to answer after start (the first start may build the workflow bundle). */
const START_TIMEOUT_MS = 180_000;
/** How long `npm start` may take to stop (the worker waits for in-flight activities). */
const STOP_TIMEOUT_MS = 100_000;

const CLUSTER = 'demo-cluster';
const PACK = 'demo-pack';
const CLUSTER_MEMBERS = ['cweb1', 'cweb2', 'cweb3'];
const PACK_MEMBERS = ['pweb1', 'pweb2', 'pweb3'];
const DB = 'db1';
const SITES = [
  {
    domain: 'cluster-blog.example.com',
    platform: 'wp-cluster',
    kind: 'cluster',
    group: CLUSTER,
    hosts: CLUSTER_MEMBERS,
  },
  { domain: 'pack-blog.example.com', platform: 'wp-pack', kind: 'pack', group: PACK, hosts: PACK_MEMBERS },
] as const;

const HOSTS: HostOptions[] = [
  ...CLUSTER_MEMBERS.map((name) => ({ name, roles: ['web-nginx'] as const })),
  { name: PACK_MEMBERS[0], roles: ['web-nginx', 'nfs'] },
  ...PACK_MEMBERS.slice(1).map((name) => ({ name, roles: ['web-nginx'] as const })),
  { name: DB, roles: ['db'] },
];

const say = (line = ''): void => {
  process.stdout.write(`${line}\n`);
};
const step = (line: string): void => say(`\n==> ${line}`);
/** A path relative to the working directory when it is inside it. */
const shown = (path: string): string => {
  const rel = relative(process.cwd(), path);
  return rel && !rel.startsWith('..') ? rel : path;
};
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** A failure the demo explains itself; printed without a stack. */
class DemoError extends Error {}

// ---- what the demo holds, for the clean-up ----

let sitefleet: ChildProcess | undefined;
let bedStart: Promise<Bed> | undefined;
let bedSettled = false;
/** Once set up, Ctrl-C is the way to end the demo: a clean stop then exits 0. */
let setupDone = false;
let cleanup: Promise<void> | undefined;

/** Stops sitefleet (API, worker, dev server: `npm start` stops its own children in order) and removes the bed. */
function cleanUp(): Promise<void> {
  cleanup ??= (async () => {
    if (!sitefleet && !bedStart) return;
    step('stopping sitefleet and removing the test hosts');
    if (sitefleet) {
      const proc = sitefleet;
      if (proc.exitCode === null && proc.signalCode === null) {
        proc.kill('SIGTERM');
        if (!(await exited(proc, STOP_TIMEOUT_MS)) && proc.pid !== undefined) {
          say(`sitefleet did not stop within ${STOP_TIMEOUT_MS / 1000} s; killing it`);
          // Its own process group (spawned detached): the dev server, worker and API it started go with it.
          try {
            process.kill(-proc.pid, 'SIGKILL');
          } catch {
            // already gone
          }
        }
      }
      say('  sitefleet stopped');
    }
    if (bedStart) {
      if (!bedSettled) say('  waiting for the test hosts to finish starting, to remove them...');
      const bed = await bedStart.catch(() => undefined);
      if (bed) {
        await bed.down();
        say(`  test hosts of bed "${bed.name}" removed`);
      }
    }
  })();
  return cleanup;
}

function exited(proc: ChildProcess, ms: number): Promise<boolean> {
  if (proc.exitCode !== null || proc.signalCode !== null) return Promise.resolve(true);
  return new Promise((resolve) => {
    const timer = setTimeout(() => resolve(false), ms);
    proc.once('exit', () => {
      clearTimeout(timer);
      resolve(true);
    });
  });
}

// ---- preconditions ----

function checkMachine(): void {
  try {
    assertBedSupported();
  } catch (err) {
    throw new DemoError(
      `the demo cannot run here: ${messageOf(err)}.\n` +
        'It creates its test hosts with Linux network namespaces, which needs Linux and root ' +
        '(for example: sudo npm run demo). Elsewhere, run sitefleet with `npm start` against your own servers.',
    );
  }
  if (!existsSync(join(WORDPRESS, 'wp-login.php'))) {
    throw new DemoError(`the demo deploys Debian's WordPress from ${WORDPRESS}; install it: apt-get install wordpress`);
  }
}

/** The demo's settings: its own data directory, with the inventory, token and secret inside it. */
function demoEnvironment(): { env: NodeJS.ProcessEnv; settings: Settings } {
  const dataDir = resolve(process.env.SITEFLEET_DATA_DIR ?? join(REPO_ROOT, '.data', 'demo'));
  // The bed's servers name the bed's client key: its directory is one the API lets ssh.keyPath name.
  const bedDir = bedPaths(process.env.SITEFLEET_DEMO_BED ?? 'demo', defaultBaseDir()).dir;
  const keyDirs =
    process.env.SITEFLEET_SSH_KEY_DIRS || loadSettings({ SITEFLEET_DATA_DIR: dataDir }).sshKeyDirs.join(':');
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    SITEFLEET_DATA_DIR: dataDir,
    SITEFLEET_SSH_KEY_DIRS: `${keyDirs}:${bedDir}`,
  };
  for (const name of [
    'SITEFLEET_INVENTORY_URL',
    'SITEFLEET_INVENTORY_FILE',
    'SITEFLEET_TOKEN_FILE',
    'SITEFLEET_SECRET_FILE',
  ]) {
    delete env[name];
  }
  return { env, settings: loadSettings(env) };
}

/**
 * The demo's test hosts are new at every start, so an inventory left by an earlier demo names hosts that are gone:
 * it is removed. A data directory the demo did not create is never touched.
 */
function prepareDataDir(settings: Settings): void {
  mkdirSync(settings.dataDir, { recursive: true });
  const marker = join(settings.dataDir, MARKER);
  const inventoryFiles = ['', '-wal', '-shm', '-journal'].map((suffix) => settings.inventoryFile + suffix);
  if (existsSync(settings.inventoryFile)) {
    if (!existsSync(marker)) {
      throw new DemoError(
        `${settings.dataDir} already holds a sitefleet inventory that the demo did not create; ` +
          'the demo needs its own data directory: unset SITEFLEET_DATA_DIR (default .data/demo) or point it at an empty one',
      );
    }
    for (const file of inventoryFiles) rmSync(file, { force: true });
    say(`removed the inventory of the previous demo in ${settings.dataDir}`);
  }
  writeFileSync(marker, 'This data directory belongs to `npm run demo`; its inventory is replaced at every start.\n');
}

function portFree(host: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = createServer();
    server.once('error', () => resolve(false));
    server.listen(port, host, () => server.close(() => resolve(true)));
  });
}

async function assertPortFree(host: string, port: number, what: string, variable: string): Promise<void> {
  if (!(await portFree(host, port))) {
    throw new DemoError(
      `${host}:${port} (${what}) is already in use — is \`npm start\` or another demo running? ` +
        `Stop it, or give the demo another port with ${variable}`,
    );
  }
}

/** Removes a bed of this name that an earlier demo left behind when it was killed (its owner process is gone). */
async function reclaimLeftoverBed(name: string, baseDir: string): Promise<void> {
  const state = await readState(bedPaths(name, baseDir)).catch(() => undefined);
  if (state?.ownerPid !== undefined && !processExists(state.ownerPid)) {
    say(`removing bed "${name}" left by an earlier demo (process ${state.ownerPid} is gone)`);
    await downBed(name, baseDir);
  }
}

// ---- sitefleet ----

function tail(file: string, lines = 30): string {
  try {
    return readFileSync(file, 'utf8').trimEnd().split('\n').slice(-lines).join('\n');
  } catch {
    return '(no log)';
  }
}

/** Runs `npm start` (scripts/start.ts) in its own process group, output to a log file, until the API answers. */
async function startSitefleet(env: NodeJS.ProcessEnv, settings: Settings, apiUrl: string, logFile: string) {
  const fd = openSync(logFile, 'a');
  const proc = spawn(process.execPath, ['--import', 'tsx', join(REPO_ROOT, 'scripts', 'start.ts')], {
    cwd: REPO_ROOT,
    env,
    stdio: ['ignore', fd, fd],
    // Ctrl-C reaches the demo only; the demo stops sitefleet after it, in order.
    detached: true,
  });
  closeSync(fd);
  sitefleet = proc;
  const deadline = Date.now() + START_TIMEOUT_MS;
  while (Date.now() < deadline) {
    if (proc.exitCode !== null || proc.signalCode !== null) {
      throw new DemoError(`sitefleet stopped while starting; the end of ${logFile}:\n${tail(logFile)}`);
    }
    const res = await fetch(`${apiUrl}/v1/health`).catch(() => undefined);
    if (res?.ok) break;
    await sleep(500);
  }
  if (Date.now() >= deadline) {
    throw new DemoError(`the API did not answer at ${apiUrl} within ${START_TIMEOUT_MS / 1000} s; see ${logFile}`);
  }
  const token = readFileSync(settings.tokenFile, 'utf8').trim();
  return { api: new ApiClient({ url: apiUrl, token }), token, proc };
}

// ---- the fleet ----

async function verifyGroup(api: ApiClient, kind: 'cluster' | 'pack', name: string): Promise<VerifyReport | undefined> {
  const { body } = await api.request<OperationStarted>('POST', `/v1/${kind}s/${seg(name)}/verify`, {});
  const prefix = `[${body.operationId}] `;
  for (const line of describeStart(body)) say(prefix + line);
  const { ok, view } = await watchOperation(api, body.operationId, body.runId, { print: say, prefix, pollMs: 500 });
  return ok ? (view.result as VerifyReport) : undefined;
}

function describeReport(kind: string, name: string, report: VerifyReport | undefined): string[] {
  if (!report) return [`${kind} ${name}: the verification did not complete`];
  const lines = [`${kind} ${name}: ${report.ok ? 'every node healthy' : 'PROBLEMS FOUND'}`];
  for (const node of report.nodes) {
    const failing = node.checks.filter((c) => !c.ok);
    lines.push(
      failing.length === 0
        ? `  ${node.server}: all ${node.checks.length} checks pass`
        : `  ${node.server}: ${failing.map((c) => `${c.name} FAILED: ${c.detail}`).join('; ')}`,
    );
  }
  return lines;
}

/** Asks every member for the site as a browser would (Host header); WordPress's REST index names the site. */
async function siteAnswers(
  bed: Bed,
  domain: string,
  hosts: readonly string[],
): Promise<{ ok: string[]; bad: string[] }> {
  const ok: string[] = [];
  const bad: string[] = [];
  for (const host of hosts) {
    try {
      const res = await bed.httpGet(host, '/?rest_route=/', { headers: { Host: domain } });
      const name = res.status === 200 ? (JSON.parse(res.body) as { name?: string }).name : undefined;
      if (name === domain) ok.push(host);
      else bad.push(`${host} (HTTP ${res.status})`);
    } catch (err) {
      bad.push(`${host} (${messageOf(err)})`);
    }
  }
  return { ok, bad };
}

async function main(): Promise<number> {
  say('sitefleet demo: a cluster and a pack of test hosts running WordPress, driven through the sitefleet API');
  checkMachine();
  const { env, settings } = demoEnvironment();
  const bedName = process.env.SITEFLEET_DEMO_BED ?? 'demo';
  const subnet = process.env.SITEFLEET_DEMO_SUBNET ?? DEFAULT_SUBNET;
  const baseDir = defaultBaseDir();
  const apiUrl = `http://${settings.apiHost}:${settings.apiPort}`;
  const logFile = join(settings.dataDir, 'sitefleet.log');

  await assertPortFree(settings.apiHost, settings.apiPort, 'the API', 'SITEFLEET_API_PORT');
  const temporalRunning = await temporalAnswers(settings.temporalAddress);
  if (!temporalRunning) {
    const [host, port] = settings.temporalAddress.split(':');
    await assertPortFree(host ?? '127.0.0.1', Number(port ?? 7233), 'Temporal', 'TEMPORAL_ADDRESS');
    await assertPortFree(host ?? '127.0.0.1', settings.uiPort, 'the Temporal Web UI', 'SITEFLEET_UI_PORT');
  }
  prepareDataDir(settings);
  await reclaimLeftoverBed(bedName, baseDir);

  step(
    `starting sitefleet (${temporalRunning ? `Temporal at ${settings.temporalAddress}` : 'Temporal dev server'}, ` +
      `worker, API; log ${shown(logFile)}) and ${HOSTS.length} test hosts ` +
      `(bed "${bedName}" on ${subnet})`,
  );
  bedStart = startBed({ name: bedName, subnet, baseDir, hosts: HOSTS, ephemeral: true });
  bedStart.then(
    () => (bedSettled = true),
    () => (bedSettled = true),
  );
  const [{ api, token, proc }, bed] = await Promise.all([startSitefleet(env, settings, apiUrl, logFile), bedStart]);
  say(`sitefleet answers at ${apiUrl}`);
  for (const h of bed.hosts) say(`  ${h.name.padEnd(6)} ${h.ip.padEnd(15)} ${h.roles.join(', ')}`);

  step('describing the fleet to sitefleet and bringing the servers in line (sitefleet apply)');
  const servers = serverInventorySchema.parse(JSON.parse(readFileSync(bed.paths.inventoryFile, 'utf8'))).servers;
  const description = applyFileSchema.parse({
    servers,
    clusters: [{ name: CLUSTER, members: CLUSTER_MEMBERS }],
    packs: [
      {
        name: PACK,
        master: PACK_MEMBERS[0],
        slaves: PACK_MEMBERS.slice(1),
        share: { server: PACK_MEMBERS[0], exportPath: '/var/aegir/platforms', clients: subnet, clientFlavour: 'sshfs' },
      },
    ],
    platforms: SITES.map((s) => ({
      name: s.platform,
      target: { kind: s.kind, name: s.group },
      source: { type: 'path', path: WORDPRESS },
      profile: 'wordpress',
    })),
    sites: SITES.map((s) => ({ domain: s.domain, platform: s.platform, dbServer: DB })),
  });
  const plan = await planApply(api, description);
  for (const line of formatPlan(plan)) say(line);
  // Servers are verified, the pack's share set up, both platforms deployed, both sites installed: in that order.
  if (!(await executePlan(api, plan, { print: say, pollMs: 500, runOperations: true }))) {
    throw new DemoError('an operation failed (see above); its Web UI link shows every step');
  }

  step('verifying every node of the cluster and the pack (VerifyClusterNodes)');
  const [clusterReport, packReport] = await Promise.all([
    verifyGroup(api, 'cluster', CLUSTER),
    verifyGroup(api, 'pack', PACK),
  ]);

  step('asking every web server for each site');
  const answers = await Promise.all(SITES.map((s) => siteAnswers(bed, s.domain, s.hosts)));
  const page = await fetch(`${apiUrl}/fleet`, { headers: { authorization: `Bearer ${token}` } });
  const pageText = await page.text();
  const pageShows = [`cluster-${CLUSTER}`, `pack-${PACK}`].filter((id) => pageText.includes(`data-group="${id}"`));

  const healthy = Boolean(clusterReport?.ok && packReport?.ok) && answers.every((a) => a.bad.length === 0);
  step(`summary: ${healthy ? 'setup complete, everything healthy' : 'setup complete WITH PROBLEMS'}`);
  for (const line of describeReport('cluster', CLUSTER, clusterReport)) say(line);
  for (const line of describeReport('pack', PACK, packReport)) say(line);
  SITES.forEach((s, i) => {
    const a = answers[i] ?? { ok: [], bad: [] };
    say(
      a.bad.length === 0
        ? `site ${s.domain} answered on ${a.ok.join(', ')} (${s.kind} ${s.group}; WordPress names the site)`
        : `site ${s.domain} did NOT answer on ${a.bad.join(', ')}`,
    );
  });
  say(`fleet health page: HTTP ${page.status}, shows ${pageShows.length} of 2 groups`);

  const ui = temporalRunning
    ? `${settings.uiUrl} (the Temporal server already at ${settings.temporalAddress}; SITEFLEET_UI_URL sets this link)`
    : settings.uiUrl;
  const dataDir = shown(settings.dataDir);
  say();
  say('sitefleet is running with the demo fleet:');
  say(`  HTTP API:          ${apiUrl}/v1   (bearer token in ${shown(settings.tokenFile)})`);
  say(`  Temporal Web UI:   ${ui}`);
  say(`  Fleet health page: ${apiUrl}/fleet   (sign in with the token)`);
  say(`  CLI:               SITEFLEET_DATA_DIR=${dataDir} npm run sitefleet -- operation list`);
  const first = bed.host(CLUSTER_MEMBERS[0] ?? '');
  say(`  A site:            curl -H 'Host: ${SITES[0].domain}' http://${first.ip}/wp-login.php`);
  say(`  Test hosts:        npm run testbed -- --name ${bedName} status   (break one, then verify again)`);

  if (process.env.SITEFLEET_DEMO_EXIT_AFTER_SETUP === '1') {
    say('SITEFLEET_DEMO_EXIT_AFTER_SETUP=1: cleaning up now');
    await cleanUp();
    return healthy ? 0 : 1;
  }
  setupDone = true;
  say('Press Ctrl-C to stop sitefleet and remove the test hosts.');
  const code = await new Promise<number | null>((resolve) =>
    proc.exitCode !== null || proc.signalCode !== null ? resolve(proc.exitCode) : proc.once('exit', (c) => resolve(c)),
  );
  if (cleanup) return new Promise<never>(() => undefined); // stopped by a signal: its handler exits
  throw new DemoError(`sitefleet stopped by itself (exit code ${code}); the end of ${logFile}:\n${tail(logFile)}`);
}

let signals = 0;
for (const [signal, code] of [
  ['SIGINT', 130],
  ['SIGTERM', 143],
  ['SIGHUP', 129],
] as const) {
  process.on(signal, () => {
    if (signals++ > 0) {
      say(`(${signal}: still cleaning up; the test hosts and sitefleet are being removed)`);
      return;
    }
    say(`\n${signal}: stopping`);
    cleanUp().then(
      () => process.exit(setupDone ? 0 : code),
      (err: unknown) => {
        say(`clean-up failed: ${messageOf(err)}`);
        process.exit(1);
      },
    );
  });
}

main().then(
  (code) => process.exit(code),
  async (err: unknown) => {
    if (signals > 0) return; // a signal is cleaning up; its handler exits
    say(
      `\ndemo failed: ${err instanceof DemoError ? err.message : err instanceof Error ? (err.stack ?? err.message) : String(err)}`,
    );
    await cleanUp().catch((cleanErr: unknown) => say(`clean-up failed too: ${messageOf(cleanErr)}`));
    process.exit(1);
  },
);
