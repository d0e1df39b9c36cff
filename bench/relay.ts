/**
 * The relay benchmark (issue 10): `npx tsx bench/relay.ts [--runs 3] [--sizes 4,8] [--rate 200mbit]`.
 *
 * Brings up a bench bed whose links are shaped like a real controller's (each host link and the controller's
 * total egress limited by tc tbf, testbed/shaping.ts), a Temporal dev server and a sitefleet worker; then, for a new
 * WordPress platform on 4 and 8 members, times side by side in interleaved rounds:
 *   - sitefleet: CreatePlatformOnCluster with `transfer: { mode: 'auto', uplinkMbit }` (the rule picks relay;
 *     a run that does not relay every member is reported);
 *   - rsync-seq: rsync from the controller to one member after another;
 *   - rsync-par: rsync from the controller to all members at once;
 *   - ansible: ansible-playbook with ansible.posix.synchronize.
 * Prints the medians and writes bench-results/relay-DATE.json. Each run deploys a platform that did not exist;
 * removing it afterwards is not timed.
 */
import { promises as fs } from 'node:fs';
import { SITEFLEET_WORKFLOW_INTERCEPTOR_MODULES, sitefleetWebpackConfig } from '../workers/bundler-options';
import * as os from 'node:os';
import * as path from 'node:path';
import { bundleWorkflowCode, DefaultLogger } from '@temporalio/worker';
import { Command, InvalidArgumentError } from 'commander';
import type { Server } from '../domain/model';
import { WORKFLOW_TYPES, workflowIds } from '../domain/operations';
import { startEphemeralTemporal } from '../devserver/ephemeral';
import { assertBedSupported, type Bed } from '../testbed';
import { applyLinkShaping, checkLinkShaping, readLinkShaping } from '../testbed/shaping';
import type { SyncedMember } from '../workflows/relay';
import { type AnsibleSetup, type BaselineContext, prepareAnsible, runBaseline, SshMasters } from './baselines';
import { defaultBenchBaseDir, startBenchBed, webHostName } from './bed';
import { type Contender, errorText, measureRounds, type Measured, timed } from './measure';
import { clusterGroupAllAtOnce, pathPlatform, readServers, type SitefleetContext, timeWorkflow } from './sitefleet';
import { BenchWorker } from './worker';

const REPO_ROOT = path.resolve(__dirname, '..');
const CONTENDERS = ['sitefleet-relay', 'sitefleet-relay-plain', 'rsync-seq', 'rsync-par', 'ansible'] as const;
type ContenderName = (typeof CONTENDERS)[number];

const LABELS: Record<ContenderName, string> = {
  'sitefleet-relay': 'sitefleet CreatePlatformOnCluster, auto: relay (zstd stream)',
  'sitefleet-relay-plain': 'sitefleet CreatePlatformOnCluster, auto: relay (uncompressed stream)',
  'rsync-seq': 'rsync from the controller, one member after another',
  'rsync-par': 'rsync from the controller, all members at once',
  ansible: 'Ansible ansible.posix.synchronize',
};

/** Targets of issue 10 for sitefleet's relay, in seconds (median). */
export const RELAY_TARGETS: Record<number, number> = { 4: 2.8, 8: 3.0 };

export interface RelayBenchOptions {
  runs: number;
  warmup: number;
  sizes: number[];
  /** Each host link and the controller's egress, in tc units. */
  rate: string;
  /** The uplink hint given to the workflow, in Mbit/s (the shaped rate). */
  uplinkMbit: number;
  contenders: ContenderName[];
  source: string;
  /** Where the bed keeps host state; '' for bench/bed.ts's default (tmpfs). */
  baseDir: string;
  outDir: string;
}

export interface RelayRow {
  members: number;
  contender: ContenderName;
  median?: number;
  samples: number[];
  error?: string;
  notes: string[];
}

/** What a running relay bench needs: a shaped bed, and (unless only baselines run) a sitefleet worker. */
export interface RelayBenchEnv {
  bed: Bed;
  servers: Map<string, Server>;
  sitefleet?: SitefleetContext;
  baseline: BaselineContext;
  masters: SshMasters;
  ansible?: AnsibleSetup;
  log: (line: string) => void;
}

function parseOptions(argv: string[]): RelayBenchOptions {
  const sizes = (value: string): number[] =>
    value.split(',').map((s) => {
      const n = Number(s);
      if (!Number.isInteger(n) || n < 1 || n > 32) throw new InvalidArgumentError(`size "${s}" must be 1-32`);
      return n;
    });
  const count = (value: string): number => {
    const n = Number(value);
    if (!Number.isInteger(n) || n < 0) throw new InvalidArgumentError('must be a whole number');
    return n;
  };
  const contenders = (value: string): ContenderName[] =>
    value.split(',').map((c) => {
      if (!(CONTENDERS as readonly string[]).includes(c)) {
        throw new InvalidArgumentError(`unknown contender "${c}" (known: ${CONTENDERS.join(', ')})`);
      }
      return c as ContenderName;
    });
  const o = new Command('bench-relay')
    .description('Relay fan-out against rsync loops and Ansible on shaped links (issue 10; see docs/relay.md)')
    .option('--runs <n>', 'measured runs per size', count, 3)
    .option('--warmup <n>', 'warm-up runs, not counted', count, 1)
    .option('--sizes <list>', 'cluster sizes', sizes, [4, 8])
    .option('--rate <rate>', 'each host link and the controller egress (tc rate)', '200mbit')
    .option('--only <list>', `contenders: ${CONTENDERS.join(',')}`, contenders, [...CONTENDERS])
    .option('--source <dir>', 'the tree to deploy', '/usr/share/wordpress')
    .option('--base-dir <dir>', 'where the bed keeps host state (default: tmpfs, as bench/run.ts)', '')
    .option('--out <dir>', 'where results JSON goes', path.join(REPO_ROOT, 'bench-results'))
    .parse(argv)
    .opts<{
      runs: number;
      warmup: number;
      sizes: number[];
      rate: string;
      only: ContenderName[];
      source: string;
      baseDir: string;
      out: string;
    }>();
  checkLinkShaping({ rate: o.rate });
  const mbit = /^(\d+(?:\.\d+)?)(k|m|g)bit$/i.exec(o.rate);
  if (!mbit) throw new InvalidArgumentError(`--rate ${o.rate}: give it in kbit, mbit or gbit`);
  const factor = { k: 1e-3, m: 1, g: 1e3 }[(mbit[2] as string).toLowerCase() as 'k' | 'm' | 'g'];
  return {
    runs: o.runs,
    warmup: o.warmup,
    sizes: o.sizes,
    rate: o.rate,
    uplinkMbit: Number(mbit[1]) * factor,
    contenders: o.only,
    source: path.resolve(o.source),
    baseDir: o.baseDir ? path.resolve(o.baseDir) : '',
    outDir: path.resolve(o.out),
  };
}

async function removeOnHosts(bed: Bed, hosts: readonly string[], dir: string): Promise<void> {
  await Promise.all(hosts.map((h) => bed.exec(h, ['rm', '-rf', '--', dir], { timeoutMs: 120_000 })));
}

/**
 * A sitefleet contender: a new platform per round, by CreatePlatformOnCluster with the uplink hint (the rule picks
 * relay), its stream compressed with zstd or not.
 */
function sitefleetContender(
  env: RelayBenchEnv,
  hosts: string[],
  options: RelayBenchOptions,
  name: 'sitefleet-relay' | 'sitefleet-relay-plain',
): Contender {
  const sf = env.sitefleet;
  const compress = name === 'sitefleet-relay';
  return {
    name,
    trial: (round) => {
      const cluster = `${compress ? 'relay' : 'plain'}${hosts.length}`;
      const platform = pathPlatform(`${cluster}-r${round}`, cluster, options.source);
      const group = clusterGroupAllAtOnce(
        cluster,
        hosts.map((h) => env.servers.get(h) as Server),
      );
      return {
        run: async () => {
          if (!sf) throw new Error('sitefleet is not running');
          const { seconds, result, breakdown } = await timeWorkflow<{ synced?: SyncedMember[] }>(
            sf,
            WORKFLOW_TYPES.createPlatformOnCluster,
            `${workflowIds.platform(platform.name)}/relay-bench-${process.pid}-${round}`,
            { platform, group, transfer: { mode: 'auto', uplinkMbit: options.uplinkMbit, compress } },
          );
          const notRelayed = (result.synced ?? []).filter((s) => s.via !== 'relay').map((s) => s.server);
          if ((result.synced ?? []).length !== hosts.length) {
            throw new Error(`synced ${(result.synced ?? []).length} of ${hosts.length} members`);
          }
          return {
            seconds,
            notes: notRelayed.length > 0 ? [`rsync for ${notRelayed.join(', ')}`] : [],
            ...(breakdown ? { breakdown } : {}),
          };
        },
        cleanup: () => removeOnHosts(env.bed, hosts, `/var/aegir/platforms/${platform.name}`),
      };
    },
  };
}

function baselineContender(
  env: RelayBenchEnv,
  name: Exclude<ContenderName, 'sitefleet-relay' | 'sitefleet-relay-plain'>,
  hosts: string[],
): Contender {
  const dest = (round: number): string => `/var/aegir/platforms/bl-${name}-${hosts.length}-r${round}`;
  return {
    name,
    trial: (round) => ({
      prepare: async () => {
        if (name === 'ansible' && !env.ansible) throw new Error('Ansible is not set up');
      },
      run: () =>
        timed(() =>
          runBaseline(name, env.baseline, { masters: env.masters, ansible: env.ansible }, hosts, dest(round)),
        ),
      cleanup: () => removeOnHosts(env.bed, hosts, dest(round)),
    }),
  };
}

/**
 * The relay scenario on a bed that is up and shaped: every contender, interleaved, for each size. bench/run.ts can
 * call this with its own bed and worker (after shaping the bed with applyLinkShaping) to add the scenario there.
 */
export async function relayScenario(env: RelayBenchEnv, options: RelayBenchOptions): Promise<RelayRow[]> {
  const rows: RelayRow[] = [];
  for (const size of options.sizes) {
    const hosts = Array.from({ length: size }, (_, i) => webHostName(i + 1));
    env.log(`\n== new platform to ${size} members over ${options.rate} links ==`);
    const contenders = options.contenders.map((c) =>
      c === 'sitefleet-relay' || c === 'sitefleet-relay-plain'
        ? sitefleetContender(env, hosts, options, c)
        : baselineContender(env, c, hosts),
    );
    const measured: Map<string, Measured> = await measureRounds(`relay ${size}`, contenders, {
      warmup: options.warmup,
      runs: options.runs,
      log: env.log,
    });
    for (const [name, m] of measured) {
      rows.push({
        members: size,
        contender: name as ContenderName,
        ...(m.summary ? { median: m.summary.median } : {}),
        samples: m.summary?.samples ?? [],
        ...(m.error !== undefined ? { error: m.error } : {}),
        notes: m.notes,
      });
    }
  }
  return rows;
}

/** The table: one line per contender, one column per size, each the median in seconds. */
export function renderRelayTable(
  rows: readonly RelayRow[],
  options: Pick<RelayBenchOptions, 'sizes' | 'rate'>,
): string {
  const header = `| contender (new WordPress platform, ${options.rate} links) | ${options.sizes.map((s) => `${s} members`).join(' | ')} |`;
  const lines = [header, `|---|${options.sizes.map(() => '---:').join('|')}|`];
  for (const contender of CONTENDERS) {
    const cells = options.sizes.map((size) => {
      const row = rows.find((r) => r.members === size && r.contender === contender);
      if (!row) return '';
      if (row.median === undefined) return `failed: ${(row.error ?? '?').slice(0, 60)}`;
      const target = contender.startsWith('sitefleet') ? RELAY_TARGETS[size] : undefined;
      const verdict =
        target === undefined
          ? ''
          : row.median < target
            ? ` (target < ${target} s: PASS)`
            : ` (target < ${target} s: MISS)`;
      return `${row.median.toFixed(2)} s${verdict}`;
    });
    if (cells.every((c) => c === '')) continue;
    lines.push(`| ${LABELS[contender]} | ${cells.join(' | ')} |`);
  }
  return lines.join('\n');
}

async function main(): Promise<void> {
  const options = parseOptions(process.argv);
  assertBedSupported();
  const log = (line: string): void => console.log(line);
  const cleanups: (() => Promise<unknown>)[] = [];
  const teardown = async (): Promise<void> => {
    for (const fn of cleanups.reverse()) await fn().catch((e: unknown) => log(`clean-up: ${errorText(e)}`));
    cleanups.length = 0;
  };
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    process.once(signal, () => void teardown().finally(() => process.exit(130)));
  }
  const workDir = await fs.mkdtemp(path.join(os.tmpdir(), 'sitefleet-bench-relay-'));
  cleanups.push(() => fs.rm(workDir, { recursive: true, force: true }));
  try {
    const webHosts = Math.max(...options.sizes);
    log(`starting a bed of ${webHosts} web hosts...`);
    const baseDir = options.baseDir || (await defaultBenchBaseDir());
    const bed = await startBenchBed({ webHosts, baseDir });
    cleanups.push(() => bed.down());
    await applyLinkShaping(bed.plan, { rate: options.rate, controllerRate: options.rate });
    const shaped = (await readLinkShaping(bed.plan)).filter((q) => q.kind === 'tbf').length;
    log(
      `bed ${bed.name} up; ${shaped} links shaped to ${options.rate} (each host both ways, and the controller egress)`,
    );
    const names = Array.from({ length: webHosts }, (_, i) => webHostName(i + 1));
    await Promise.all(
      names.map((h) => bed.exec(h, ['install', '-d', '-o', 'aegir', '-g', 'aegir', '/var/aegir/platforms'])),
    );
    const baseline: BaselineContext = { bed, source: options.source, workDir };
    const masters = new SshMasters(baseline);
    cleanups.push(() => masters.closeAll());
    const env: RelayBenchEnv = { bed, servers: await readServers(bed.paths.inventoryFile), baseline, masters, log };
    if (options.contenders.includes('ansible')) {
      env.ansible = await prepareAnsible(baseline).catch((e: unknown) => {
        log(`Ansible is not usable: ${errorText(e)}`);
        return undefined;
      });
    }
    if (options.contenders.some((c) => c.startsWith('sitefleet'))) {
      const temporal = await startEphemeralTemporal();
      cleanups.push(() => temporal.teardown());
      const { code } = await bundleWorkflowCode({
        workflowsPath: require.resolve('../workflows'),
        webpackConfigHook: sitefleetWebpackConfig(),
        workflowInterceptorModules: SITEFLEET_WORKFLOW_INTERCEPTOR_MODULES,
        logger: new DefaultLogger('WARN'),
      });
      const bundlePath = path.join(workDir, 'workflow-bundle.js');
      await fs.writeFile(bundlePath, code);
      const taskQueue = `bench-relay-${process.pid}`;
      const worker = await BenchWorker.start({
        temporalAddress: temporal.address,
        namespace: temporal.namespace ?? 'default',
        taskQueue,
        bundlePath,
        env: {
          SITEFLEET_DATA_DIR: path.join(workDir, 'data'),
          SITEFLEET_SECRET_FILE: path.join(workDir, 'data', 'worker-secret'),
          SITEFLEET_SSH_KEY: bed.paths.clientKey,
        },
      });
      cleanups.push(() => worker.stop());
      env.sitefleet = { client: temporal.client, taskQueue, workflowTimeoutMs: 180_000 };
    }
    const startedAt = new Date();
    const rows = await relayScenario(env, options);
    const table = renderRelayTable(rows, options);
    log(`\n${table}\n`);
    for (const row of rows.filter((r) => r.notes.length > 0 || r.error)) {
      log(`  ${row.contender} at ${row.members}: ${[...row.notes, row.error ?? ''].filter(Boolean).join('; ')}`);
    }
    log(
      `samples: ${rows.map((r) => `${r.contender}@${r.members}=[${r.samples.map((s) => s.toFixed(2)).join(', ')}]`).join(' ')}`,
    );
    log(
      `load average at the end: ${os
        .loadavg()
        .map((l) => l.toFixed(1))
        .join(' ')} on ${os.cpus().length} cores`,
    );
    await fs.mkdir(options.outDir, { recursive: true });
    const file = path.join(options.outDir, `relay-${startedAt.toISOString().replace(/[:.]/g, '-')}.json`);
    await fs.writeFile(
      file,
      `${JSON.stringify({ startedAt, options, loadAverage: os.loadavg(), cores: os.cpus().length, rows, table }, null, 2)}\n`,
    );
    log(`results: ${file}`);
  } finally {
    await teardown();
  }
}

if (require.main === module) {
  main().then(
    () => process.exit(0),
    (error: unknown) => {
      console.error(`bench relay failed: ${errorText(error)}`);
      process.exit(1);
    },
  );
}
