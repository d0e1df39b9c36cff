/**
 * The sitefleet benchmark (issue 7): `npx tsx bench/run.ts [--runs N] [--quick] ...` (`npm run bench`).
 *
 * Brings up a test bed (8 nginx + php-fpm web hosts and a MariaDB host), a Temporal dev server and a sitefleet
 * worker, then measures on Debian's WordPress tree, side by side in one run:
 *   1. full fan-out of a new platform to 2, 4 and 8 members (CreatePlatformOnCluster);
 *   2. a no-op ResyncCluster (nothing changed) on 2, 4 and 8 members;
 *   3. InstallSiteOnCluster on 3 members: latency of one site, and sites installed in a row;
 *   4. VerifyClusterNodes on 8 members with 1, 10 and 50 sites;
 * and the same transfers by the baselines (bench/baselines.ts). Prints medians, ratios and PASS/MISS per target,
 * and writes bench-results/DATE.json. See docs/benchmarks.md.
 */
import { execFile, spawn } from 'node:child_process';
import { promises as fs } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { promisify } from 'node:util';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { bundleWorkflowCode, DefaultLogger } from '@temporalio/worker';
import { Command, InvalidArgumentError } from 'commander';
import { findTemporalCli, temporalCliVersion } from '../devserver/temporal-cli';
import type { Platform, Server, Site } from '../domain/model';
import { platformRoot } from '../domain/paths';
import { startTestTemporal } from '../test/support/temporal';
import { assertBedSupported, type Bed } from '../testbed';
import { applyLinkShaping, clearLinkShaping } from '../testbed/shaping';
import {
  type AnsibleSetup,
  type BaselineContext,
  type BaselineName,
  BASELINES,
  prepareAnsible,
  rsyncParallel,
  runBaseline,
  SshMasters,
} from './baselines';
import { DB_HOST_NAME, defaultBenchBaseDir, reclaimStaleBeds, startBenchBed, webHostName } from './bed';
import {
  breakdownNearMedian,
  type Contender,
  errorText,
  type Measured,
  measureRounds,
  type RunOutcome,
  timed,
} from './measure';
import {
  type BenchResults,
  type Cell,
  type ContenderName,
  evaluateTargets,
  renderReport,
  type ScenarioId,
  writeResults,
} from './report';
import {
  clusterGroup,
  createPlatformOnCluster,
  installSiteOnCluster,
  pathPlatform,
  readServers,
  resyncCluster,
  type SitefleetContext,
  verifyClusterNodes,
  wordpressSite,
} from './scenarios';
import { relayScenario, renderRelayTable } from './relay';
import { summarize } from './stats';
import { BenchWorker } from './worker';

const execFileAsync = promisify(execFile);
const REPO_ROOT = path.resolve(__dirname, '..');

/** `relay` runs last: it shapes the bed's links (200 Mbit/s by default) and removes the shaping afterwards. */
const SCENARIOS = ['fanout', 'noop', 'install', 'verify', 'relay'] as const;
type ScenarioName = (typeof SCENARIOS)[number];

interface Plan {
  runs: number;
  warmup: number;
  quick: boolean;
  scenarios: ScenarioName[];
  fanoutSizes: number[];
  verifyMembers: number;
  verifySites: number[];
  installMembers: number;
  inARow: number;
  relaySizes: number[];
  relayRuns: number;
  /** tc rate of every host link and of the controller's egress in the relay scenario. */
  relayRate: string;
  sitefleet: boolean;
  baselines: BaselineName[];
  /** Undefined: {@link defaultBenchBaseDir}. */
  baseDir?: string;
  source: string;
  outDir: string;
  workflowTimeoutMs: number;
  /** Print the report of a saved results file instead of running. */
  show?: string;
}

const wholeNumber =
  (what: string, min = 0) =>
  (value: string): number => {
    const n = Number(value);
    if (!Number.isInteger(n) || n < min) throw new InvalidArgumentError(`${what} must be a whole number >= ${min}`);
    return n;
  };

function listOf<T extends string>(allowed: readonly T[], what: string) {
  return (value: string): T[] => {
    const items = value.split(',').map((s) => s.trim());
    for (const item of items) {
      if (!(allowed as readonly string[]).includes(item)) {
        throw new InvalidArgumentError(`unknown ${what} "${item}" (known: ${allowed.join(', ')})`);
      }
    }
    return items as T[];
  };
}

const countsOf =
  (what: string, max: number) =>
  (value: string): number[] =>
    value.split(',').map((s) => {
      const n = Number(s);
      if (!Number.isInteger(n) || n < 1 || n > max) throw new InvalidArgumentError(`${what} "${s}" must be 1-${max}`);
      return n;
    });

function parsePlan(argv: string[]): Plan {
  const program = new Command('bench')
    .description('Benchmark sitefleet workflows against rsync loops and Ansible on a test bed (see docs/benchmarks.md)')
    .option('--runs <n>', 'measured runs per scenario and size (after the warm-up)', wholeNumber('--runs', 1))
    .option('--warmup <n>', 'warm-up runs, not counted', wholeNumber('--warmup'))
    .option('--quick', 'a fast smoke run: 1 run, no warm-up, fan-out at 2 and 8, verify with 1 and 10 sites')
    .option('--only <scenarios>', `scenarios to run: ${SCENARIOS.join(',')}`, listOf(SCENARIOS, 'scenario'))
    .option('--sizes <list>', 'cluster sizes for fan-out and no-op resync (default 2,4,8)', countsOf('size', 32))
    .option(
      '--verify-sites <list>',
      'site counts for VerifyClusterNodes (default 1,10,50)',
      countsOf('site count', 500),
    )
    .option('--in-a-row <n>', 'sites installed in a row for throughput (default 50)', wholeNumber('--in-a-row'))
    .option('--relay-sizes <list>', 'cluster sizes for the shaped relay scenario (default 4,8)', countsOf('size', 32))
    .option('--relay-runs <n>', 'measured runs of the relay scenario (default 3)', wholeNumber('--relay-runs', 1))
    .option('--relay-rate <rate>', 'link rate of the relay scenario, tc syntax (default 200mbit)', '200mbit')
    .option('--baselines <list>', `baselines to run: ${BASELINES.join(',')}`, listOf(BASELINES, 'baseline'))
    .option('--no-baselines', 'run sitefleet only')
    .option('--no-sitefleet', 'run the baselines only')
    .option(
      '--base-dir <dir>',
      'where the bed keeps host state (default: $SITEFLEET_TESTBED_DIR, else /dev/shm/sitefleet-bench on tmpfs)',
    )
    .option('--source <dir>', 'the tree to deploy', '/usr/share/wordpress')
    .option('--out <dir>', 'where results JSON goes', path.join(REPO_ROOT, 'bench-results'))
    .option(
      '--workflow-timeout <seconds>',
      'fail a sitefleet workflow that runs longer',
      wholeNumber('--workflow-timeout', 1),
      180,
    )
    .option('--show <file>', 'print the tables of a saved results file (bench-results/*.json) and exit')
    .parse(argv);
  const o = program.opts<{
    runs?: number;
    warmup?: number;
    quick?: boolean;
    only?: ScenarioName[];
    sizes?: number[];
    verifySites?: number[];
    inARow?: number;
    relaySizes?: number[];
    relayRuns?: number;
    relayRate: string;
    baselines?: BaselineName[] | false;
    sitefleet: boolean;
    baseDir?: string;
    source: string;
    out: string;
    workflowTimeout: number;
    show?: string;
  }>();
  const quick = o.quick === true;
  return {
    runs: o.runs ?? (quick ? 1 : 5),
    warmup: o.warmup ?? (quick ? 0 : 1),
    quick,
    scenarios: o.only ?? [...SCENARIOS],
    fanoutSizes: o.sizes ?? (quick ? [2, 8] : [2, 4, 8]),
    verifyMembers: 8,
    verifySites: o.verifySites ?? (quick ? [1, 10] : [1, 10, 50]),
    installMembers: 3,
    inARow: o.inARow ?? (quick ? 10 : 50),
    relaySizes: o.relaySizes ?? (quick ? [4] : [4, 8]),
    relayRuns: o.relayRuns ?? (quick ? 1 : 3),
    relayRate: o.relayRate,
    sitefleet: o.sitefleet,
    baselines: o.baselines === false ? [] : (o.baselines ?? [...BASELINES]),
    ...(o.baseDir !== undefined ? { baseDir: path.resolve(o.baseDir) } : {}),
    source: path.resolve(o.source),
    outDir: path.resolve(o.out),
    workflowTimeoutMs: o.workflowTimeout * 1000,
    ...(o.show !== undefined ? { show: path.resolve(o.show) } : {}),
  };
}

const log = (line: string): void => console.log(line);

/**
 * Things to undo at the end, in reverse order, also on Ctrl-C. Something started while the teardown runs (a
 * start-up step that was in flight) is undone too.
 */
class Teardown {
  private readonly steps: { name: string; fn: () => Promise<unknown> }[] = [];
  private running: Promise<void> | undefined;
  private done = false;

  push(name: string, fn: () => Promise<unknown>): void {
    if (this.done) void this.undo({ name, fn });
    else this.steps.push({ name, fn });
  }

  private undo(step: { name: string; fn: () => Promise<unknown> }): Promise<void> {
    return step.fn().then(
      () => undefined,
      (error: unknown) => log(`clean-up: ${step.name} failed: ${errorText(error)}`),
    );
  }

  run(): Promise<void> {
    this.running ??= (async () => {
      for (let step = this.steps.pop(); step; step = this.steps.pop()) await this.undo(step);
      this.done = true;
    })();
    return this.running;
  }
}

async function commandOutput(argv: string[]): Promise<string> {
  try {
    const { stdout, stderr } = await execFileAsync(argv[0] as string, argv.slice(1));
    return (stdout.trim() || stderr.trim()).split('\n')[0] ?? '';
  } catch (error) {
    return `unavailable (${errorText(error).split('\n')[0] ?? ''})`;
  }
}

async function filesystemType(dir: string): Promise<string> {
  return (await execFileAsync('stat', ['-f', '-c', '%T', dir])).stdout.trim();
}

async function treeSize(dir: string): Promise<{ files: number; bytes: number }> {
  let files = 0;
  let bytes = 0;
  const walk = async (d: string): Promise<void> => {
    for (const entry of await fs.readdir(d, { withFileTypes: true })) {
      const p = path.join(d, entry.name);
      const st = await fs.lstat(p);
      files++;
      if (entry.isDirectory()) await walk(p);
      else bytes += st.size;
    }
  };
  await walk(dir);
  return { files, bytes };
}

/** Test beds up on this machine (their bridges are named sf-BED). */
async function countBeds(): Promise<number> {
  const { stdout } = await execFileAsync('ip', ['-o', 'link', 'show', 'type', 'bridge']).catch(() => ({ stdout: '' }));
  return stdout.split('\n').filter((l) => /^\d+: sf-/.test(l)).length;
}

async function removeOnHosts(bed: Bed, hosts: readonly string[], dir: string): Promise<void> {
  await Promise.all(hosts.map((h) => bed.exec(h, ['rm', '-rf', '--', dir], { timeoutMs: 120_000 })));
}

interface Sitefleet {
  ctx: SitefleetContext;
  worker: BenchWorker;
  servers: Map<string, Server>;
}

/** A Temporal dev server, the workflow bundle and a worker process; undefined (with the reason) when any fails. */
async function startSitefleet(
  bed: Bed,
  plan: Plan,
  workDir: string,
  teardown: Teardown,
): Promise<{ sitefleet?: Sitefleet; error?: string; tools: Record<string, string> }> {
  const tools: Record<string, string> = {};
  try {
    const cli = findTemporalCli();
    if (cli) tools.temporalCli = temporalCliVersion(cli);
    const started = performance.now();
    const env: TestWorkflowEnvironment = await startTestTemporal();
    teardown.push('Temporal dev server', () => env.teardown());
    log(`Temporal dev server at ${env.address} (${((performance.now() - started) / 1000).toFixed(1)} s)`);
    const bundleStarted = performance.now();
    const { code } = await bundleWorkflowCode({
      workflowsPath: require.resolve('../workflows'),
      logger: new DefaultLogger('WARN'),
    });
    const bundlePath = path.join(workDir, 'workflow-bundle.js');
    await fs.writeFile(bundlePath, code);
    log(`workflow bundle built (${((performance.now() - bundleStarted) / 1000).toFixed(1)} s)`);
    const taskQueue = `bench-${process.pid}`;
    const workerEnv: Record<string, string> = {
      SITEFLEET_DATA_DIR: path.join(workDir, 'data'),
      SITEFLEET_SECRET_FILE: path.join(workDir, 'data', 'worker-secret'),
      SITEFLEET_SSH_KEY: bed.paths.clientKey,
    };
    const worker = await BenchWorker.start({
      temporalAddress: env.address,
      namespace: env.namespace ?? 'default',
      taskQueue,
      bundlePath,
      env: workerEnv,
    });
    teardown.push('sitefleet worker', () => worker.stop());
    log(`sitefleet worker ready (pid ${worker.memory().pid})`);
    const servers = await readServers(bed.paths.inventoryFile);
    return {
      sitefleet: { ctx: { client: env.client, taskQueue, workflowTimeoutMs: plan.workflowTimeoutMs }, worker, servers },
      tools,
    };
  } catch (error) {
    return { error: errorText(error), tools };
  }
}

/** Runs a sitefleet step unless the worker has died, and fails at once if it dies meanwhile. */
function guarded<T>(sf: Sitefleet, fn: () => Promise<T>): Promise<T> {
  const dead = sf.worker.failure;
  if (dead) return Promise.reject(new Error(dead));
  return sf.worker.guard(fn());
}

function serversOf(sf: Sitefleet, names: readonly string[]): Server[] {
  return names.map((n) => {
    const s = sf.servers.get(n);
    if (!s) throw new Error(`the bed's inventory has no server ${n}`);
    return s;
  });
}

function toCells(scenario: ScenarioId, members: number, measured: Map<string, Measured>, sites?: number): Cell[] {
  return [...measured].map(([contender, m]) => ({
    scenario,
    members,
    ...(sites !== undefined ? { sites } : {}),
    contender: contender as ContenderName,
    ...(m.summary ? { summary: m.summary } : {}),
    ...(m.error !== undefined ? { error: m.error } : {}),
    notes: m.notes,
    ...(m.breakdown ? { breakdown: m.breakdown } : {}),
    loadAverage: os.loadavg()[0] ?? 0,
  }));
}

interface Runtime {
  plan: Plan;
  bed: Bed;
  sf?: Sitefleet;
  sfError?: string;
  baseline: BaselineContext;
  masters: SshMasters;
  ansible?: AnsibleSetup;
  ansibleError?: string;
  webHosts: string[];
}

function baselineContenders(
  rt: Runtime,
  hosts: string[],
  dest: (b: BaselineName, round: number) => string,
  keep: boolean,
): Contender[] {
  return rt.plan.baselines.map((b) => ({
    name: b,
    trial: (round: number) => ({
      prepare: async () => {
        if (b === 'rsync-par-mux') await rt.masters.ensure(hosts);
        if (b === 'ansible' && !rt.ansible)
          throw new Error(`Ansible is not usable: ${rt.ansibleError ?? 'not set up'}`);
      },
      run: () =>
        timed(() => runBaseline(b, rt.baseline, { masters: rt.masters, ansible: rt.ansible }, hosts, dest(b, round))),
      cleanup: keep ? undefined : () => removeOnHosts(rt.bed, hosts, dest(b, round)),
    }),
  }));
}

/** A contender that fails every run with `reason` (sitefleet when its worker could not start). */
const unavailable = (name: string, reason: string): Contender => ({
  name,
  trial: () => ({ run: () => Promise.reject(new Error(reason)) }),
});

async function fanoutScenario(rt: Runtime): Promise<Cell[]> {
  const cells: Cell[] = [];
  rt.sf?.worker.enterSection('fanout');
  for (const size of rt.plan.fanoutSizes) {
    log(`\n== full fan-out of a new platform to ${size} members ==`);
    const hosts = rt.webHosts.slice(0, size);
    const contenders: Contender[] = [];
    const sf = rt.sf;
    if (sf) {
      const cluster = `fan${size}`;
      const group = clusterGroup(cluster, serversOf(sf, hosts));
      contenders.push({
        name: 'sitefleet',
        trial: (round) => {
          const platform = pathPlatform(`${cluster}-r${round}`, cluster, rt.plan.source);
          return {
            run: () => guarded(sf, () => createPlatformOnCluster(sf.ctx, group, platform)),
            cleanup: () => removeOnHosts(rt.bed, hosts, platformRoot({ aegirRoot: '/var/aegir' }, platform.name)),
          };
        },
      });
    } else if (rt.plan.sitefleet) contenders.push(unavailable('sitefleet', rt.sfError ?? 'sitefleet did not start'));
    contenders.push(
      ...baselineContenders(rt, hosts, (b, round) => `/var/aegir/platforms/bl-${b}-${size}-r${round}`, false),
    );
    cells.push(...toCells('fanout', size, await measureRounds(`fan-out ${size}`, contenders, { ...rt.plan, log })));
  }
  return cells;
}

async function noopScenario(rt: Runtime): Promise<Cell[]> {
  const cells: Cell[] = [];
  rt.sf?.worker.enterSection('noop-resync');
  for (const size of rt.plan.fanoutSizes) {
    log(`\n== no-op resync of ${size} members ==`);
    const hosts = rt.webHosts.slice(0, size);
    const contenders: Contender[] = [];
    const sf = rt.sf;
    if (sf) {
      const cluster = `noop${size}`;
      const group = clusterGroup(cluster, serversOf(sf, hosts));
      const platform = pathPlatform(cluster, cluster, rt.plan.source);
      let setupError: string | undefined;
      try {
        const created = await guarded(sf, () => createPlatformOnCluster(sf.ctx, group, platform));
        log(
          `  set-up: platform ${platform.name} created on ${size} members by sitefleet in ${created.seconds.toFixed(2)} s`,
        );
      } catch (error) {
        setupError = `set-up (CreatePlatformOnCluster) failed: ${errorText(error)}`;
        log(`  ${setupError}`);
      }
      contenders.push(
        setupError
          ? unavailable('sitefleet', setupError)
          : {
              name: 'sitefleet',
              trial: () => ({ run: () => guarded(sf, () => resyncCluster(sf.ctx, group, [platform], [], [])) }),
            },
      );
    } else if (rt.plan.sitefleet) contenders.push(unavailable('sitefleet', rt.sfError ?? 'sitefleet did not start'));
    const dest = `/var/aegir/platforms/bl-noop-${size}`;
    if (rt.plan.baselines.length > 0) {
      const setup = await timed(() => rsyncParallel(rt.baseline, hosts, dest));
      log(`  set-up: ${dest} copied to ${size} members by parallel rsync in ${setup.seconds.toFixed(2)} s`);
    }
    contenders.push(...baselineContenders(rt, hosts, () => dest, true));
    cells.push(...toCells('noop-resync', size, await measureRounds(`no-op ${size}`, contenders, { ...rt.plan, log })));
    // The trees are not needed any more; on tmpfs they take memory.
    for (const dir of [dest, platformRoot({ aegirRoot: '/var/aegir' }, `noop${size}`)]) {
      await removeOnHosts(rt.bed, hosts, dir).catch((error: unknown) =>
        log(`  clean-up of ${dir}: ${errorText(error)}`),
      );
    }
  }
  return cells;
}

/** Creates the platform of a site scenario; throws with a clear message. */
async function sitePlatform(sf: Sitefleet, cluster: string, hosts: string[], source: string): Promise<Platform> {
  const platform = pathPlatform(`wp-${cluster}`, cluster, source);
  try {
    const created = await guarded(sf, () =>
      createPlatformOnCluster(sf.ctx, clusterGroup(cluster, serversOf(sf, hosts)), platform),
    );
    log(`  set-up: platform ${platform.name} created on ${hosts.length} members in ${created.seconds.toFixed(2)} s`);
  } catch (error) {
    throw new Error(`set-up (CreatePlatformOnCluster ${platform.name}) failed: ${errorText(error)}`);
  }
  return platform;
}

/** Installs `count` sites one after another; the cell holds the per-site times and the batch's wall-clock. */
async function installInARow(
  sf: Sitefleet,
  scenario: ScenarioId,
  cluster: string,
  hosts: string[],
  platform: Platform,
  count: number,
  prefix: string,
): Promise<{ cell: Cell; sites: Site[] }> {
  const group = clusterGroup(cluster, serversOf(sf, hosts));
  const db = serversOf(sf, [DB_HOST_NAME])[0] as Server;
  const runs: RunOutcome[] = [];
  const sites: Site[] = [];
  const notes: string[] = [];
  let error: string | undefined;
  const started = performance.now();
  for (let i = 1; i <= count; i++) {
    const site = wordpressSite(`${prefix}${i}.${cluster}.bench.test`, platform.name, DB_HOST_NAME);
    try {
      const outcome = await guarded(sf, () => installSiteOnCluster(sf.ctx, group, platform, site, db));
      runs.push(outcome);
      sites.push(site);
      notes.push(...outcome.notes.filter((n) => !notes.includes(n)));
      if (i % 10 === 0 || i === count) log(`  ${i}/${count} installed (last ${outcome.seconds.toFixed(2)} s)`);
    } catch (e) {
      error = `site ${i} of ${count} (${site.domain}) failed: ${errorText(e)}`;
      log(`  ${error.slice(0, 600)}`);
      break;
    }
  }
  const totalSeconds = (performance.now() - started) / 1000;
  const summary = runs.length > 0 ? summarize(runs.map((r) => r.seconds)) : undefined;
  const breakdown = summary ? breakdownNearMedian(runs, summary.median) : undefined;
  const cell: Cell = {
    scenario,
    members: hosts.length,
    sites: count,
    contender: 'sitefleet',
    ...(summary ? { summary } : {}),
    ...(error === undefined ? { totalSeconds } : { error }),
    notes,
    ...(breakdown ? { breakdown } : {}),
    loadAverage: os.loadavg()[0] ?? 0,
  };
  return { cell, sites };
}

async function installScenario(rt: Runtime): Promise<Cell[]> {
  const members = rt.plan.installMembers;
  log(`\n== InstallSiteOnCluster on ${members} members ==`);
  const sf = rt.sf;
  const failed = (reason: string): Cell[] => [
    { scenario: 'install-latency', members, contender: 'sitefleet', error: reason, notes: [] },
    {
      scenario: 'install-throughput',
      members,
      sites: rt.plan.inARow,
      contender: 'sitefleet',
      error: reason,
      notes: [],
    },
  ];
  if (!sf) return rt.plan.sitefleet ? failed(rt.sfError ?? 'sitefleet did not start') : [];
  sf.worker.enterSection('install');
  const hosts = rt.webHosts.slice(0, members);
  const cluster = `inst${members}`;
  let platform: Platform;
  try {
    platform = await sitePlatform(sf, cluster, hosts, rt.plan.source);
  } catch (error) {
    return failed(errorText(error));
  }
  const group = clusterGroup(cluster, serversOf(sf, hosts));
  const db = serversOf(sf, [DB_HOST_NAME])[0] as Server;
  const latency = await measureRounds(
    `install ${members}`,
    [
      {
        name: 'sitefleet',
        trial: (round) => ({
          run: () =>
            guarded(sf, () =>
              installSiteOnCluster(
                sf.ctx,
                group,
                platform,
                wordpressSite(`lat${round}.${cluster}.bench.test`, platform.name, DB_HOST_NAME),
                db,
              ),
            ),
        }),
      },
    ],
    { ...rt.plan, log },
  );
  const cells = toCells('install-latency', members, latency);
  if (rt.plan.inARow > 0) {
    log(`  ${rt.plan.inARow} sites in a row on ${members} members:`);
    cells.push((await installInARow(sf, 'install-throughput', cluster, hosts, platform, rt.plan.inARow, 'row')).cell);
  }
  return cells;
}

async function verifyScenario(rt: Runtime): Promise<Cell[]> {
  const members = rt.plan.verifyMembers;
  const counts = [...rt.plan.verifySites].sort((a, b) => a - b);
  log(`\n== VerifyClusterNodes on ${members} members with ${counts.join(', ')} sites ==`);
  const sf = rt.sf;
  const failed = (reason: string): Cell[] =>
    counts.map((sites) => ({ scenario: 'verify', members, sites, contender: 'sitefleet', error: reason, notes: [] }));
  if (!sf) return rt.plan.sitefleet ? failed(rt.sfError ?? 'sitefleet did not start') : [];
  sf.worker.enterSection('verify');
  const hosts = rt.webHosts.slice(0, members);
  const cluster = `ver${members}`;
  let platform: Platform;
  try {
    platform = await sitePlatform(sf, cluster, hosts, rt.plan.source);
  } catch (error) {
    return failed(errorText(error));
  }
  const wanted = counts[counts.length - 1] ?? 0;
  log(`  set-up: ${wanted} sites in a row on ${members} members:`);
  const setup = await installInARow(sf, 'install-in-a-row-8', cluster, hosts, platform, wanted, 'site');
  const cells: Cell[] = [setup.cell];
  const group = clusterGroup(cluster, serversOf(sf, hosts));
  const db = serversOf(sf, [DB_HOST_NAME]);
  for (const count of counts) {
    if (setup.sites.length < count) {
      cells.push(
        ...failed(`only ${setup.sites.length} of ${count} sites could be installed: ${setup.cell.error ?? ''}`).filter(
          (c) => c.sites === count,
        ),
      );
      continue;
    }
    const sites = setup.sites.slice(0, count);
    const measured = await measureRounds(
      `verify ${members}/${count} sites`,
      [
        {
          name: 'sitefleet',
          trial: () => ({ run: () => guarded(sf, () => verifyClusterNodes(sf.ctx, group, [platform], sites, db)) }),
        },
      ],
      { ...rt.plan, log },
    );
    cells.push(...toCells('verify', members, measured, count));
  }
  return cells;
}

/**
 * Issue 10's scenario in the same run: the bed's links shaped (each host both ways, and the controller's egress),
 * a new platform to 4 and 8 members by sitefleet's relay and by the baselines (bench/relay.ts), then the shaping
 * removed again.
 */
async function relayOnShapedLinks(rt: Runtime): Promise<NonNullable<BenchResults['relay']>> {
  const { plan, bed } = rt;
  const mbit = /^(\d+(?:\.\d+)?)(k|m|g)bit$/i.exec(plan.relayRate);
  if (!mbit) throw new Error(`--relay-rate ${plan.relayRate}: give it in kbit, mbit or gbit`);
  const unit = (mbit[2] as string).toLowerCase();
  const uplinkMbit = Number(mbit[1]) * (unit === 'k' ? 0.001 : unit === 'g' ? 1000 : 1);
  rt.sf?.worker.enterSection('relay');
  await applyLinkShaping(bed.plan, { rate: plan.relayRate, controllerRate: plan.relayRate });
  try {
    const contenders = [
      ...(plan.sitefleet ? (['sitefleet-relay', 'sitefleet-relay-plain'] as const) : []),
      ...(['rsync-seq', 'rsync-par', 'ansible'] as const).filter((b) => plan.baselines.includes(b)),
    ];
    const rows = await relayScenario(
      {
        bed,
        servers: rt.sf?.servers ?? (await readServers(bed.paths.inventoryFile)),
        ...(rt.sf ? { sitefleet: rt.sf.ctx } : {}),
        baseline: rt.baseline,
        masters: rt.masters,
        ...(rt.ansible ? { ansible: rt.ansible } : {}),
        log,
      },
      {
        runs: plan.relayRuns,
        warmup: plan.warmup,
        sizes: plan.relaySizes,
        rate: plan.relayRate,
        uplinkMbit,
        contenders: [...contenders],
        source: plan.source,
        baseDir: '',
        outDir: plan.outDir,
      },
    );
    return { rate: plan.relayRate, sizes: plan.relaySizes, rows };
  } finally {
    await clearLinkShaping(bed.plan);
  }
}

async function checkTools(plan: Plan): Promise<void> {
  await fs.access(plan.source).catch(() => {
    throw new Error(
      `the source tree ${plan.source} is missing (Debian: apt-get install wordpress, or pass --source DIR)`,
    );
  });
  const needed = ['rsync', 'ssh', ...(plan.baselines.includes('ansible') ? ['ansible-playbook'] : [])];
  for (const tool of needed) {
    await execFileAsync('which', [tool]).catch(() => {
      throw new Error(
        `${tool} is not installed (apt-get install -y ${tool === 'ssh' ? 'openssh-client' : tool === 'ansible-playbook' ? 'ansible' : tool})`,
      );
    });
  }
}

/** If the process ends any other way than through the teardown, a detached `testbed down` removes the bed. */
function downOnExit(bed: Bed, baseDir: string): () => void {
  const handler = (): void => {
    spawn(
      process.execPath,
      ['--import', 'tsx', path.join(REPO_ROOT, 'testbed', 'cli.ts'), '--name', bed.name, '--dir', baseDir, 'down'],
      {
        cwd: REPO_ROOT,
        detached: true,
        stdio: 'ignore',
      },
    ).unref();
  };
  process.on('exit', handler);
  return () => process.off('exit', handler);
}

async function main(): Promise<number> {
  const plan = parsePlan(process.argv);
  if (plan.show !== undefined) {
    const saved = JSON.parse(await fs.readFile(plan.show, 'utf8')) as BenchResults;
    log(renderReport(saved));
    if (saved.relay) log(`\n${renderRelayTable(saved.relay.rows, saved.relay)}`);
    return 0;
  }
  assertBedSupported();
  await checkTools(plan);
  const startedAt = new Date();
  const loadAverageAtStart = os.loadavg();
  const otherBedsAtStart = await countBeds();
  const teardown = new Teardown();
  for (const [signal, code] of [
    ['SIGINT', 130],
    ['SIGTERM', 143],
    ['SIGHUP', 129],
  ] as const) {
    process.once(signal, () => {
      log(`\n${signal}: tearing down...`);
      void teardown.run().finally(() => process.exit(code));
    });
  }
  const problems: string[] = [];
  const workDir = await fs.mkdtemp(path.join(os.tmpdir(), 'sitefleet-bench-'));
  teardown.push('scratch directory', () => fs.rm(workDir, { recursive: true, force: true }));
  try {
    const needsSites = plan.scenarios.includes('verify');
    const webHosts = Math.max(
      ...(plan.scenarios.some((s) => s === 'fanout' || s === 'noop') ? plan.fanoutSizes : [1]),
      needsSites ? plan.verifyMembers : 1,
      plan.scenarios.includes('install') ? plan.installMembers : 1,
      plan.scenarios.includes('relay') ? Math.max(...plan.relaySizes) : 1,
    );
    const baseDir = plan.baseDir ?? (await defaultBenchBaseDir());
    await reclaimStaleBeds(baseDir, log);
    log(`starting a bed of ${webHosts} web hosts and a db host under ${baseDir}...`);
    const bedStarted = performance.now();
    const bed = await startBenchBed({ webHosts, baseDir });
    const bedStartSeconds = (performance.now() - bedStarted) / 1000;
    const cancelExitDown = downOnExit(bed, baseDir);
    teardown.push(`bed ${bed.name}`, async () => {
      await bed.down();
      cancelExitDown();
    });
    const hostStateDir = path.join(bed.hosts[0]?.dir ?? bed.paths.hostsDir, 'aegir');
    const filesystem = await filesystemType(hostStateDir);
    log(`bed ${bed.name} up in ${bedStartSeconds.toFixed(1)} s; host state on ${filesystem} (${hostStateDir})`);
    const names = Array.from({ length: webHosts }, (_, i) => webHostName(i + 1));
    await Promise.all(
      names.map((h) => bed.exec(h, ['install', '-d', '-o', 'aegir', '-g', 'aegir', '/var/aegir/platforms'])),
    );

    const tools: Record<string, string> = {
      rsync: await commandOutput(['rsync', '--version']),
      ssh: await commandOutput(['ssh', '-V']),
      node: process.version,
    };
    const baseline: BaselineContext = { bed, source: plan.source, workDir };
    const masters = new SshMasters(baseline);
    teardown.push('ssh control masters', () => masters.closeAll());
    const rt: Runtime = { plan, bed, baseline, masters, webHosts: names };
    if (plan.baselines.includes('ansible')) {
      try {
        rt.ansible = await prepareAnsible(baseline);
        tools.ansible = `${rt.ansible.version}, module ${rt.ansible.module}`;
      } catch (error) {
        rt.ansibleError = errorText(error);
        problems.push(`Ansible: ${rt.ansibleError}`);
      }
    }
    if (plan.sitefleet) {
      const started = await startSitefleet(bed, plan, workDir, teardown);
      Object.assign(tools, started.tools);
      rt.sf = started.sitefleet;
      rt.sfError = started.error;
      if (started.error) {
        problems.push(`sitefleet could not start: ${started.error}`);
        log(`sitefleet could not start; measuring the baselines only:\n  ${started.error.slice(0, 1500)}`);
      }
    }

    const cells: Cell[] = [];
    let relay: BenchResults['relay'];
    const steps: Record<ScenarioName, (rt: Runtime) => Promise<Cell[]>> = {
      fanout: fanoutScenario,
      noop: noopScenario,
      install: installScenario,
      verify: verifyScenario,
      relay: async (r) => {
        relay = await relayOnShapedLinks(r);
        return [];
      },
    };
    for (const scenario of SCENARIOS) {
      if (!plan.scenarios.includes(scenario)) continue;
      try {
        cells.push(...(await steps[scenario](rt)));
      } catch (error) {
        problems.push(`scenario ${scenario} stopped: ${errorText(error)}`);
        log(`scenario ${scenario} stopped: ${errorText(error)}`);
      }
    }

    const source = {
      path: plan.source,
      filesystem: await filesystemType(plan.source),
      ...(await treeSize(plan.source)),
    };
    if (rt.sf) await rt.sf.worker.stop();
    const workerMemory = rt.sf?.worker.memory();
    const finishedAt = new Date();
    const results: BenchResults = {
      format: 1,
      startedAt: startedAt.toISOString(),
      finishedAt: finishedAt.toISOString(),
      durationSeconds: (finishedAt.getTime() - startedAt.getTime()) / 1000,
      argv: process.argv.slice(2),
      options: { ...plan, baseDir },
      machine: {
        hostname: os.hostname(),
        cores: os.cpus().length,
        cpuModel: os.cpus()[0]?.model ?? 'unknown',
        memoryBytes: os.totalmem(),
        kernel: `${os.type()} ${os.release()}`,
        node: process.version,
        loadAverageAtStart,
        loadAverageAtEnd: os.loadavg(),
        otherBedsAtStart,
      },
      hostState: { bedName: bed.name, dir: hostStateDir, filesystem, onTmpfs: filesystem === 'tmpfs', bedStartSeconds },
      source,
      tools,
      sitefleet: {
        available: rt.sf !== undefined,
        ...(rt.sfError !== undefined ? { error: rt.sfError } : {}),
        ...(workerMemory ? { worker: workerMemory } : {}),
      },
      cells,
      ...(relay ? { relay } : {}),
      targets: evaluateTargets(cells, workerMemory),
      problems,
    };
    log(renderReport(results));
    if (relay) log(`\n${renderRelayTable(relay.rows, relay)}`);
    log(`results: ${await writeResults(plan.outDir, results)}`);
    return 0;
  } finally {
    await teardown.run();
  }
}

main().then(
  (code) => process.exit(code),
  (error: unknown) => {
    console.error(`bench failed: ${errorText(error)}`);
    process.exit(1);
  },
);
