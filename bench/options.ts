/** The bench's command line: which scenarios, sizes and runs (`npm run bench -- --help`). */
import * as path from 'node:path';
import { Command, InvalidArgumentError } from 'commander';
import { type BaselineName, BASELINES } from './baselines';

const REPO_ROOT = path.resolve(__dirname, '..');

/** `relay` runs last: it shapes the bed's links (200 Mbit/s by default) and removes the shaping afterwards. */
export const SCENARIOS = ['fanout', 'noop', 'install', 'verify', 'rolling', 'relay', 'scale'] as const;
/** `scale` (1,000 sites on the production topology, hours on a small machine) runs only when asked for. */
export const DEFAULT_SCENARIOS = SCENARIOS.filter((s) => s !== 'scale');
export type ScenarioName = (typeof SCENARIOS)[number];

export interface Plan {
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
  /**
   * The scale scenario: sites in all (in blocks of a tenth, alternately with one worker and two), cluster members,
   * installs at once, and a time budget after which no new block starts (undefined: none).
   */
  scaleSites: number;
  scaleMembers: number;
  scaleConcurrency: number;
  scaleMinutes?: number;
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

export const wholeNumber =
  (what: string, min = 0) =>
  (value: string): number => {
    const n = Number(value);
    if (!Number.isInteger(n) || n < min) throw new InvalidArgumentError(`${what} must be a whole number >= ${min}`);
    return n;
  };

export function listOf<T extends string>(allowed: readonly T[], what: string) {
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

export const countsOf =
  (what: string, max: number) =>
  (value: string): number[] =>
    value.split(',').map((s) => {
      const n = Number(s);
      if (!Number.isInteger(n) || n < 1 || n > max) throw new InvalidArgumentError(`${what} "${s}" must be 1-${max}`);
      return n;
    });

export function parsePlan(argv: string[]): Plan {
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
    .option('--scale-sites <n>', 'sites of the scale scenario (default 1000)', wholeNumber('--scale-sites', 2))
    .option(
      '--scale-concurrency <n>',
      'installs at once in the scale scenario (default 8)',
      wholeNumber('--scale-concurrency', 1),
    )
    .option(
      '--scale-minutes <n>',
      "time budget of the scale scenario's installs: no new block of sites starts after it (default: none)",
      wholeNumber('--scale-minutes', 1),
    )
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
    scaleSites?: number;
    scaleConcurrency?: number;
    scaleMinutes?: number;
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
    scenarios: o.only ?? [...DEFAULT_SCENARIOS],
    fanoutSizes: o.sizes ?? (quick ? [2, 8] : [2, 4, 8]),
    verifyMembers: 8,
    verifySites: o.verifySites ?? (quick ? [1, 10] : [1, 10, 50]),
    installMembers: 3,
    inARow: o.inARow ?? (quick ? 10 : 50),
    relaySizes: o.relaySizes ?? (quick ? [4] : [4, 8]),
    relayRuns: o.relayRuns ?? (quick ? 1 : 3),
    relayRate: o.relayRate,
    scaleSites: o.scaleSites ?? 1000,
    scaleMembers: 8,
    scaleConcurrency: o.scaleConcurrency ?? 8,
    ...(o.scaleMinutes === undefined ? {} : { scaleMinutes: o.scaleMinutes }),
    sitefleet: o.sitefleet,
    // Only fanout, noop and relay have baselines: a run of other scenarios needs no rsync loops nor Ansible.
    baselines:
      o.baselines === false || (o.only && !o.only.some((s) => s === 'fanout' || s === 'noop' || s === 'relay'))
        ? []
        : (o.baselines ?? [...BASELINES]),
    ...(o.baseDir !== undefined ? { baseDir: path.resolve(o.baseDir) } : {}),
    source: path.resolve(o.source),
    outDir: path.resolve(o.out),
    workflowTimeoutMs: o.workflowTimeout * 1000,
    ...(o.show !== undefined ? { show: path.resolve(o.show) } : {}),
  };
}
