/**
 * The bench's results: one JSON document (bench-results/DATE.json) and the tables printed at the end — medians of
 * every scenario side by side, the ratio sitefleet / baseline, and PASS/MISS for each target.
 */
import type { RelayRow } from './relay';
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { BASELINES, type BaselineName } from './baselines';
import { describeBreakdown, type WorkflowBreakdown } from './history';
import { ratio, type Summary } from './stats';
import type { WorkerMemory } from './worker';

export type ScenarioId =
  | 'fanout'
  | 'noop-resync'
  | 'verify'
  | 'install-latency'
  | 'install-throughput'
  | 'install-in-a-row-8';
export type ContenderName = 'sitefleet' | BaselineName;

export const SCENARIO_TITLES: Record<ScenarioId, string> = {
  fanout: 'full fan-out of a new platform',
  'noop-resync': 'no-op resync (nothing changed)',
  verify: 'VerifyClusterNodes',
  'install-latency': 'InstallSiteOnCluster, one site',
  'install-throughput': 'InstallSiteOnCluster, sites in a row (per site)',
  'install-in-a-row-8': 'InstallSiteOnCluster on 8 members (verify set-up, per site)',
};

export interface Cell {
  scenario: ScenarioId;
  /** Cluster members. */
  members: number;
  /** Sites on the cluster (verify) or installed in the batch (throughput). */
  sites?: number;
  contender: ContenderName;
  summary?: Summary;
  /** For batches: wall-clock of the whole batch, in seconds. */
  totalSeconds?: number;
  error?: string;
  notes: string[];
  /** sitefleet: where the time of the run closest to the median went. */
  breakdown?: WorkflowBreakdown;
  /** The machine's 1-minute load average when the cell finished (2 cores: above 2 means a busy machine). */
  loadAverage?: number;
}

export type TargetStatus = 'PASS' | 'MISS' | 'n/a';

export interface TargetResult {
  id: string;
  description: string;
  status: TargetStatus;
  /** The measured value the target is about (seconds, a ratio, or MB). */
  measured?: number;
  limit: number;
  detail: string;
}

export interface BenchResults {
  format: 1;
  startedAt: string;
  finishedAt: string;
  durationSeconds: number;
  argv: string[];
  options: Record<string, unknown>;
  machine: {
    hostname: string;
    cores: number;
    cpuModel: string;
    memoryBytes: number;
    kernel: string;
    node: string;
    loadAverageAtStart: number[];
    loadAverageAtEnd: number[];
    /** Other test beds up while the bench ran (a sign of a busy machine). */
    otherBedsAtStart: number;
  };
  hostState: {
    bedName: string;
    dir: string;
    /** `stat -f -c %T` of the directory behind the hosts' /var/aegir: tmpfs, ext2/ext3 (= ext4), xfs... */
    filesystem: string;
    onTmpfs: boolean;
    bedStartSeconds: number;
  };
  source: { path: string; filesystem: string; files: number; bytes: number };
  tools: Record<string, string>;
  sitefleet: { available: boolean; error?: string; worker?: WorkerMemory };
  cells: Cell[];
  /** The relay scenario (bench/relay.ts) on shaped links, when it ran: its rows and its link rate. */
  relay?: { rate: string; sizes: number[]; rows: RelayRow[] };
  targets: TargetResult[];
  problems: string[];
}

const CONTENDERS: ContenderName[] = ['sitefleet', ...BASELINES];
const MB = 1_000_000;

export function findCell(
  cells: readonly Cell[],
  scenario: ScenarioId,
  members: number,
  contender: ContenderName,
  sites?: number,
): Cell | undefined {
  return cells.find(
    (c) =>
      c.scenario === scenario &&
      c.members === members &&
      c.contender === contender &&
      (sites === undefined || c.sites === sites),
  );
}

const medianOf = (cell: Cell | undefined): number | undefined => cell?.summary?.median;

function whyMissing(cell: Cell | undefined, what: string): string {
  if (!cell) return `${what} was not measured in this run`;
  if (cell.error) return `${what} failed: ${cell.error.slice(0, 200)}`;
  return `${what} has no samples`;
}

function target(
  id: string,
  description: string,
  measured: number | undefined,
  limit: number,
  pass: (value: number) => boolean,
  detail: (value: number) => string,
  missing: string,
): TargetResult {
  if (measured === undefined || !Number.isFinite(measured)) {
    return { id, description, status: 'n/a', limit, detail: missing };
  }
  return { id, description, status: pass(measured) ? 'PASS' : 'MISS', measured, limit, detail: detail(measured) };
}

/** The targets of issue 7, at 8 members unless said otherwise. */
export function evaluateTargets(cells: readonly Cell[], worker: WorkerMemory | undefined): TargetResult[] {
  const fan = (c: ContenderName): Cell | undefined => findCell(cells, 'fanout', 8, c);
  const noop = (c: ContenderName): Cell | undefined => findCell(cells, 'noop-resync', 8, c);
  const sfFan = medianOf(fan('sitefleet'));
  const sfNoop = medianOf(noop('sitefleet'));
  const verify50 = findCell(cells, 'verify', 8, 'sitefleet', 50);
  const install = findCell(cells, 'install-latency', 3, 'sitefleet');
  const missingPair = (a: Cell | undefined, b: Cell | undefined, what: string): string =>
    medianOf(a) === undefined ? whyMissing(a, `sitefleet ${what}`) : whyMissing(b, `the baseline ${what}`);
  return [
    target(
      'fanout-vs-rsync-par',
      'full fan-out to 8 members within 1.2x of the parallel rsync loop',
      ratio(sfFan, medianOf(fan('rsync-par'))),
      1.2,
      (r) => r <= 1.2,
      (r) => `sitefleet / rsync-par = ${r.toFixed(2)}x (${fmt(sfFan)} vs ${fmt(medianOf(fan('rsync-par')))})`,
      missingPair(fan('sitefleet'), fan('rsync-par'), 'fan-out at 8'),
    ),
    target(
      'fanout-vs-ansible',
      'full fan-out to 8 members >= 1.5x faster than Ansible',
      ratio(medianOf(fan('ansible')), sfFan),
      1.5,
      (r) => r >= 1.5,
      (r) => `Ansible / sitefleet = ${r.toFixed(2)}x (${fmt(medianOf(fan('ansible')))} vs ${fmt(sfFan)})`,
      missingPair(fan('sitefleet'), fan('ansible'), 'fan-out at 8'),
    ),
    target(
      'noop-absolute',
      'no-op resync of 8 members < 0.4 s',
      sfNoop,
      0.4,
      (s) => s < 0.4,
      (s) => `${fmt(s)}`,
      whyMissing(noop('sitefleet'), 'sitefleet no-op resync at 8'),
    ),
    target(
      'noop-vs-ansible',
      'no-op resync of 8 members >= 4x faster than Ansible',
      ratio(medianOf(noop('ansible')), sfNoop),
      4,
      (r) => r >= 4,
      (r) => `Ansible / sitefleet = ${r.toFixed(2)}x (${fmt(medianOf(noop('ansible')))} vs ${fmt(sfNoop)})`,
      missingPair(noop('sitefleet'), noop('ansible'), 'no-op resync at 8'),
    ),
    target(
      'verify-50-sites',
      'VerifyClusterNodes on 8 members with 50 sites < 3 s',
      medianOf(verify50),
      3,
      (s) => s < 3,
      (s) => fmt(s),
      whyMissing(verify50, 'VerifyClusterNodes with 50 sites'),
    ),
    target(
      'install-latency',
      'one site install on 3 members < 3 s',
      medianOf(install),
      3,
      (s) => s < 3,
      (s) => fmt(s),
      whyMissing(install, 'InstallSiteOnCluster on 3 members'),
    ),
    target(
      'worker-rss',
      'worker resident memory peak < 300 MB',
      worker ? worker.peakRssBytes / MB : undefined,
      300,
      (mb) => mb < 300,
      (mb) =>
        `${mb.toFixed(0)} MB peak (VmHWM), ${(worker?.readyRssBytes ?? 0) / MB > 0 ? `${((worker?.readyRssBytes ?? 0) / MB).toFixed(0)} MB when ready` : ''}`,
      'the sitefleet worker did not run',
    ),
  ];
}

export function fmt(seconds: number | undefined): string {
  if (seconds === undefined) return '-';
  return seconds < 10 ? `${seconds.toFixed(2)} s` : `${seconds.toFixed(1)} s`;
}

function fmtRatio(value: number | undefined): string {
  return value === undefined ? '-' : `${value.toFixed(2)}x`;
}

function cellText(cell: Cell | undefined): string {
  if (!cell) return '';
  if (cell.summary) return `${fmt(cell.summary.median)}${cell.notes.length > 0 ? '*' : ''}`;
  return cell.error !== undefined ? 'FAILED' : '-';
}

function renderTable(header: string[], rows: string[][]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]): string =>
    cells.map((c, i) => (i < 2 ? c.padEnd(widths[i] ?? 0) : c.padStart(widths[i] ?? 0))).join('  ');
  return [line(header), widths.map((w) => '-'.repeat(w)).join('  '), ...rows.map(line)].join('\n');
}

/** The side-by-side table (medians) of the scenarios that have baselines, with sitefleet / baseline ratios. */
export function comparisonTable(cells: readonly Cell[]): string {
  const baselines = BASELINES.filter((b) => cells.some((c) => c.contender === b));
  const header = [
    'scenario',
    'members',
    ...CONTENDERS.filter((c) => c === 'sitefleet' || baselines.includes(c as BaselineName)),
  ];
  header.push(...baselines.map((b) => `sf/${b}`), 'load');
  const rows: string[][] = [];
  for (const scenario of ['fanout', 'noop-resync'] as const) {
    const sizes = [...new Set(cells.filter((c) => c.scenario === scenario).map((c) => c.members))].sort(
      (a, b) => a - b,
    );
    for (const members of sizes) {
      const sf = findCell(cells, scenario, members, 'sitefleet');
      const row = [SCENARIO_TITLES[scenario], String(members), cellText(sf)];
      for (const b of baselines) row.push(cellText(findCell(cells, scenario, members, b)));
      for (const b of baselines)
        row.push(fmtRatio(ratio(medianOf(sf), medianOf(findCell(cells, scenario, members, b)))));
      const loads = cells
        .filter((c) => c.scenario === scenario && c.members === members)
        .map((c) => c.loadAverage ?? 0);
      row.push(loads.length > 0 ? Math.max(...loads).toFixed(1) : '');
      rows.push(row);
    }
  }
  return renderTable(header, rows);
}

/** sitefleet-only scenarios (no baseline): absolute medians with min and max. */
export function absoluteTable(cells: readonly Cell[]): string {
  const rows: string[][] = [];
  for (const scenario of ['verify', 'install-latency', 'install-throughput', 'install-in-a-row-8'] as const) {
    for (const cell of cells.filter((c) => c.scenario === scenario && c.contender === 'sitefleet')) {
      const what =
        scenario === 'verify'
          ? `${SCENARIO_TITLES[scenario]}, ${cell.sites ?? 0} site(s)`
          : scenario === 'install-latency'
            ? SCENARIO_TITLES[scenario]
            : `${SCENARIO_TITLES[scenario]}, ${cell.sites ?? 0} sites`;
      const s = cell.summary;
      const rate =
        cell.totalSeconds !== undefined && cell.sites
          ? `${((cell.sites / cell.totalSeconds) * 60).toFixed(1)}/min`
          : '';
      rows.push([
        what,
        String(cell.members),
        s ? `${fmt(s.median)}${cell.notes.length > 0 ? '*' : ''}` : cell.error !== undefined ? 'FAILED' : '-',
        s ? fmt(s.min) : '',
        s ? fmt(s.max) : '',
        s ? String(s.n) : '',
        cell.totalSeconds !== undefined ? fmt(cell.totalSeconds) : '',
        rate,
        cell.loadAverage !== undefined ? cell.loadAverage.toFixed(1) : '',
      ]);
    }
  }
  return renderTable(['scenario', 'members', 'median', 'min', 'max', 'n', 'total', 'rate', 'load'], rows);
}

export function targetsTable(targets: readonly TargetResult[]): string {
  return targets.map((t) => `${t.status.padEnd(4)}  ${t.description}: ${t.detail}`).join('\n');
}

function cellName(c: Cell): string {
  return `${SCENARIO_TITLES[c.scenario]}, ${c.members} members${c.sites !== undefined ? `, ${c.sites} sites` : ''}`;
}

/** Everything printed at the end of a run. */
export function renderReport(results: BenchResults): string {
  const mem = results.sitefleet.worker;
  const notes = results.cells.flatMap((c) =>
    c.notes.map(
      (n) =>
        `  * ${SCENARIO_TITLES[c.scenario]}, ${c.members} members${c.sites !== undefined ? `, ${c.sites} sites` : ''}, ${c.contender}: ${n}`,
    ),
  );
  const breakdowns = results.cells.flatMap((c) =>
    c.breakdown ? [`  ${cellName(c)}: ${describeBreakdown(c.breakdown)}`] : [],
  );
  const errors = results.cells
    .filter((c) => c.error !== undefined)
    .map(
      (c) => `  ${SCENARIO_TITLES[c.scenario]}, ${c.members} members, ${c.contender}: ${(c.error ?? '').slice(0, 400)}`,
    );
  return [
    '',
    `sitefleet benchmark, ${results.startedAt} (${results.durationSeconds.toFixed(0)} s)`,
    `machine: ${results.machine.cores} cores (${results.machine.cpuModel}), ${(results.machine.memoryBytes / 2 ** 30).toFixed(1)} GiB, ` +
      `load ${results.machine.loadAverageAtStart.map((l) => l.toFixed(2)).join(' ')} at start, ` +
      `${results.machine.loadAverageAtEnd.map((l) => l.toFixed(2)).join(' ')} at end; ${results.machine.otherBedsAtStart} other test bed(s) up`,
    `host state: ${results.hostState.filesystem}${results.hostState.onTmpfs ? ' (tmpfs)' : ' (disk)'} at ${results.hostState.dir}; ` +
      `source ${results.source.path} (${results.source.files} files, ${(results.source.bytes / MB).toFixed(0)} MB, ${results.source.filesystem})`,
    `runs: ${String(results.options.runs)} measured after ${String(results.options.warmup)} warm-up; medians`,
    '',
    comparisonTable(results.cells),
    '',
    absoluteTable(results.cells),
    '',
    mem
      ? `worker memory: peak ${(mem.peakRssBytes / MB).toFixed(0)} MB (VmHWM), ${(mem.readyRssBytes / MB).toFixed(0)} MB when ready; ` +
        `peaks by scenario: ${Object.entries(mem.sectionPeaks)
          .map(([k, v]) => `${k} ${(v / MB).toFixed(0)}`)
          .join(', ')}` +
        (mem.nodeAtEnd
          ? `; at the end: JS heap ${(mem.nodeAtEnd.heapUsed / MB).toFixed(0)} of ${(mem.nodeAtEnd.heapTotal / MB).toFixed(0)} MB, ` +
            `external ${(mem.nodeAtEnd.external / MB).toFixed(0)} MB (array buffers ${(mem.nodeAtEnd.arrayBuffers / MB).toFixed(0)} MB), ` +
            `the rest native (Temporal core, V8 code, the workflow thread's heap)`
          : '')
      : `worker memory: not measured (${results.sitefleet.error ?? 'sitefleet did not run'})`,
    '',
    'targets:',
    targetsTable(results.targets),
    ...(notes.length > 0 ? ['', 'notes (* in the tables):', ...notes] : []),
    ...(breakdowns.length > 0 ? ['', "where sitefleet's time went (run closest to the median):", ...breakdowns] : []),
    ...(errors.length > 0 ? ['', 'failures:', ...errors] : []),
    ...(results.problems.length > 0 ? ['', 'problems:', ...results.problems.map((p) => `  ${p}`)] : []),
    '',
  ].join('\n');
}

/** Writes `dir/DATE.json` (the date and time of the start, so runs on one day do not overwrite each other). */
export async function writeResults(dir: string, results: BenchResults): Promise<string> {
  await fs.mkdir(dir, { recursive: true });
  const file = path.join(dir, `${results.startedAt.replace(/[:.]/g, '-')}.json`);
  await fs.writeFile(file, `${JSON.stringify(results, null, 2)}\n`);
  return file;
}
