/**
 * Scenario `scale` (`npm run bench -- --only scale [--scale-sites N] [--scale-concurrency C]`): WordPress sites on an
 * 8-member cluster, run on the production topology (`npm run stack`: Temporal server on PostgreSQL as three
 * processes, compiled workers, API): the first half of the sites with one worker, the second half with two (same
 * hosts). Reports sites per minute of each half, VerifyClusterNodes time at 10 %, 50 % and 100 % of the sites
 * (100, 500 and 1,000 at the default size), the largest workflow history (events and bytes) against Temporal's
 * per-run limits, and the API's list latency. Prints its own table and writes bench-results/scale-DATE.json.
 */
import type { ChildProcess } from 'node:child_process';
import { promises as fs, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Client, Connection } from '@temporalio/client';
import type { Platform, Server, Site } from '../../domain/model';
import { sitefleetDataConverter } from '../../codec/data-converter';
import { stackDown, stackUp, startStackWorker } from '../../devserver/stack';
import { stackAddresses, type StackState } from '../../devserver/stack-state';
import { DB_HOST_NAME } from '../bed';
import type { WorkflowBreakdown } from '../history';
import { errorText } from '../measure';
import type { Cell } from '../report';
import { log, type Runtime } from '../runtime';
import {
  clusterGroupAllAtOnce,
  createPlatformOnCluster,
  installSiteOnCluster,
  pathPlatform,
  readServers,
  resyncCluster,
  type SitefleetContext,
  verifyClusterNodes,
  wordpressSite,
} from '../sitefleet';

/** Temporal's per-run limits (history.maximumHistoryEventCount / historySizeLimitError defaults). */
export const HISTORY_LIMIT_EVENTS = 51_200;
export const HISTORY_LIMIT_BYTES = 50 * 1024 * 1024;

export interface ScaleResults {
  sites: number;
  members: number;
  concurrency: number;
  phases: {
    workers: number;
    sites: number;
    seconds: number;
    sitesPerMinute: number;
    error?: string;
    /** Where an install's time went, summed over the phase's installs (from their histories). */
    profile?: InstallProfile;
  }[];
  /** Each block of installs (a tenth of the sites) between two verifications: how the rate moves with the sites. */
  blocks: {
    from: number;
    to: number;
    workers: number;
    seconds: number;
    sitesPerMinute: number;
    /** Busy CPU time of the whole machine during the block, per site (other load on the machine included). */
    cpuSecondsPerSite: number;
    /** 1-minute load average at the end of the block. */
    load: number;
  }[];
  verify: { sites: number; seconds: number; ok: boolean; error?: string }[];
  /** A ResyncCluster of every installed site at the end (nothing to repair): its time and history. */
  resync?: { sites: number; seconds: number; events?: number; bytes?: number; error?: string };
  largestHistory?: { workflowId: string; events: number; bytes: number; eventsPct: number; bytesPct: number };
  /** Installs that failed (the run goes on without them): domain and error. */
  failedInstalls: string[];
  workflowsListed: number;
  /** Per workflow type: how many ran and their largest history. */
  historyByType: Record<string, { workflows: number; maxEvents: number; maxBytes: number }>;
  apiListMs: number[];
  loadAverage: number[];
}

/** Sums of the installs' history breakdowns (bench/history.ts): what one install waits for, on average. */
export interface InstallProfile {
  installs: number;
  /** Mean wall-clock of one install (its history, start to close), seconds. */
  meanSeconds: number;
  /** Mean time of one install with an activity running, seconds. */
  meanActivitySeconds: number;
  /** Mean workflow task time of one install, seconds. */
  meanWorkflowTaskSeconds: number;
  maxQueueSeconds: number;
  /** Per activity type: executions per install and mean execution seconds, most total time first. */
  byType: { type: string; perInstall: number; meanSeconds: number; totalSeconds: number }[];
}

function profileOf(breakdowns: WorkflowBreakdown[]): InstallProfile | undefined {
  if (breakdowns.length === 0) return undefined;
  const n = breakdowns.length;
  const types = new Map<string, { count: number; seconds: number }>();
  for (const b of breakdowns) {
    for (const t of b.byType) {
      const e = types.get(t.type) ?? { count: 0, seconds: 0 };
      e.count += t.count;
      e.seconds += t.meanSeconds * t.count;
      types.set(t.type, e);
    }
  }
  const sum = (f: (b: WorkflowBreakdown) => number) => breakdowns.reduce((a, b) => a + f(b), 0);
  return {
    installs: n,
    meanSeconds: sum((b) => b.historySeconds) / n,
    meanActivitySeconds: sum((b) => b.activityBusySeconds) / n,
    meanWorkflowTaskSeconds: sum((b) => b.workflowTaskSeconds) / n,
    maxQueueSeconds: Math.max(...breakdowns.map((b) => b.maxActivityQueueSeconds)),
    byType: [...types]
      .map(([type, e]) => ({
        type,
        perInstall: e.count / n,
        meanSeconds: e.seconds / e.count,
        totalSeconds: e.seconds,
      }))
      .sort((a, b) => b.totalSeconds - a.totalSeconds),
  };
}

function describeProfile(p: InstallProfile): string {
  return (
    `one install ${p.meanSeconds.toFixed(2)} s (activities ${p.meanActivitySeconds.toFixed(2)} s, workflow tasks ` +
    `${p.meanWorkflowTaskSeconds.toFixed(2)} s, max queue ${p.maxQueueSeconds.toFixed(2)} s); ` +
    p.byType
      .slice(0, 5)
      .map((t) => `${t.type} ${t.perInstall.toFixed(0)}x ${t.meanSeconds.toFixed(2)} s`)
      .join(', ')
  );
}

/** Busy CPU seconds of the whole machine since boot (all cores; /proc/stat: everything but idle and iowait). */
function machineCpuSeconds(): number {
  const cpu = readFileSync('/proc/stat', 'utf8').split('\n')[0]!.trim().split(/\s+/).slice(1).map(Number);
  const [user, nice, system, , , irq, softirq, steal] = cpu as number[];
  return ((user ?? 0) + (nice ?? 0) + (system ?? 0) + (irq ?? 0) + (softirq ?? 0) + (steal ?? 0)) / 100;
}

async function freeBasePort(): Promise<number> {
  const { createServer } = await import('node:net');
  const free = (port: number) =>
    new Promise<boolean>((resolve) => {
      const s = createServer();
      s.once('error', () => resolve(false));
      s.listen(port, '127.0.0.1', () => s.close(() => resolve(true)));
    });
  for (let attempt = 0; attempt < 50; attempt++) {
    const base = 20_000 + Math.floor(Math.random() * 800) * 15;
    if ((await Promise.all(Array.from({ length: 14 }, (_, i) => free(base + i)))).every(Boolean)) return base;
  }
  throw new Error('no 14 free ports below 32768 for the stack');
}

/** Installs `sites` with at most `concurrency` workflows at once; returns the wall-clock seconds. */
async function installAll(
  ctx: SitefleetContext,
  group: ReturnType<typeof clusterGroupAllAtOnce>,
  platform: Platform,
  sites: Site[],
  db: Server,
  concurrency: number,
  progress: (done: number) => void,
  breakdowns: WorkflowBreakdown[],
  failures: string[],
): Promise<number> {
  const started = performance.now();
  let next = 0;
  let done = 0;
  const lane = async (): Promise<void> => {
    while (next < sites.length) {
      const site = sites[next++]!;
      try {
        const r = await installSiteOnCluster(ctx, group, platform, site, db);
        if (r.breakdown) breakdowns.push(r.breakdown);
      } catch (e) {
        // One failed install (a timeout on a loaded machine) is reported, and the others go on.
        failures.push(`${site.domain}: ${errorText(e)}`);
        log(`  install of ${site.domain} failed: ${errorText(e)}`);
      }
      progress(++done);
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, sites.length) }, lane));
  return (performance.now() - started) / 1000;
}

export function renderScaleTable(r: ScaleResults): string {
  const lines = [
    `scale: ${r.sites} WordPress sites on ${r.members} members, ${r.concurrency} installs at once (production topology)`,
    '| measure | value |',
    '|---|---|',
  ];
  for (const p of r.phases) {
    lines.push(
      `| install, ${p.workers} worker(s), ${p.sites} sites | ${p.error ? `error: ${p.error.slice(0, 120)}` : `${p.sitesPerMinute.toFixed(1)} sites/min (${p.seconds.toFixed(0)} s)`} |`,
    );
  }
  for (const p of r.phases) {
    if (p.profile)
      lines.push(`| where an install's time went, ${p.workers} worker(s) | ${describeProfile(p.profile)} |`);
  }
  const [one, two] = r.phases;
  if (one && two && !one.error && !two.error) {
    lines.push(
      `| two workers / one worker | ${(two.sitesPerMinute / one.sitesPerMinute).toFixed(2)}x (target >= 1.6x) |`,
    );
  }
  if (r.failedInstalls.length > 0) {
    lines.push(
      `| failed installs | ${r.failedInstalls.length}: ${r.failedInstalls.slice(0, 3).join('; ').slice(0, 300)} |`,
    );
  }
  for (const b of r.blocks) {
    lines.push(
      `| install, sites ${b.from}-${b.to}, ${b.workers} worker(s) | ${b.sitesPerMinute.toFixed(1)} sites/min (${b.seconds.toFixed(0)} s; ${b.cpuSecondsPerSite.toFixed(1)} CPU-s per site, load ${b.load.toFixed(1)}) |`,
    );
  }
  for (const v of r.verify) {
    lines.push(
      `| VerifyClusterNodes, ${r.members} x ${v.sites} sites | ${v.error ? `error: ${v.error.slice(0, 120)}` : `${v.seconds.toFixed(2)} s${v.ok ? '' : ' (not ok)'}`} |`,
    );
  }
  const h = r.largestHistory;
  if (h) {
    lines.push(
      `| largest history (${h.workflowId}) | ${h.events} events (${h.eventsPct.toFixed(2)} % of 51,200), ${h.bytes} bytes (${h.bytesPct.toFixed(3)} % of 50 MB); target < 10 % |`,
    );
  }
  for (const [type, t] of Object.entries(r.historyByType)) {
    lines.push(`| history of ${type} (${t.workflows} run(s)), largest | ${t.maxEvents} events, ${t.maxBytes} bytes |`);
  }
  if (r.resync) {
    lines.push(
      `| ResyncCluster, ${r.members} x ${r.resync.sites} sites (nothing to repair) | ${r.resync.error ? `error: ${r.resync.error.slice(0, 120)}` : `${r.resync.seconds.toFixed(1)} s`} |`,
    );
  }
  if (r.apiListMs.length > 0) {
    const sorted = [...r.apiListMs].sort((a, b) => a - b);
    lines.push(
      `| API GET /v1/operations (${r.workflowsListed} workflows) | median ${sorted[Math.floor(sorted.length / 2)]!.toFixed(0)} ms, max ${sorted[sorted.length - 1]!.toFixed(0)} ms |`,
    );
  }
  lines.push(`load average during the run: ${r.loadAverage.map((l) => l.toFixed(1)).join(', ')} (2 shared cores)`);
  return lines.join('\n');
}

export async function scaleScenario(rt: Runtime): Promise<Cell[]> {
  const { scaleSites: total, scaleMembers: members, scaleConcurrency: concurrency } = rt.plan;
  log(`\n== scale: ${total} sites on ${members} members, production topology ==`);
  const dir = mkdtempSync(path.join(os.tmpdir(), 'sitefleet-scale-'));
  const results: ScaleResults = {
    sites: total,
    members,
    concurrency,
    phases: [],
    blocks: [],
    verify: [],
    failedInstalls: [],
    workflowsListed: 0,
    historyByType: {},
    apiListMs: [],
    loadAverage: [],
  };
  let stack: StackState | undefined;
  let connection: Connection | undefined;
  try {
    // The stack's workers log in to the bed's hosts with the bed's client key.
    process.env.SITEFLEET_SSH_KEY = rt.bed.paths.clientKey;
    stack = await stackUp({ dir, basePort: await freeBasePort(), workers: 1, log: (l) => log(`  ${l}`) });
    const a = stackAddresses(stack);
    connection = await Connection.connect({ address: a.temporal });
    const dataConverter = sitefleetDataConverter({ codecKeyFile: path.join(dir, 'secrets', 'codec-keys') });
    const client = new Client({ connection, namespace: stack.namespace, ...(dataConverter ? { dataConverter } : {}) });
    const ctx: SitefleetContext = { client, taskQueue: stack.taskQueue, workflowTimeoutMs: rt.plan.workflowTimeoutMs };
    const servers = await readServers(rt.bed.paths.inventoryFile);
    const hosts = rt.webHosts.slice(0, members);
    const group = clusterGroupAllAtOnce(
      'scale',
      hosts.map((h) => servers.get(h)!),
    );
    const db = servers.get(DB_HOST_NAME)!;
    const platform = pathPlatform('wp-scale', 'scale', rt.plan.source);
    await createPlatformOnCluster(ctx, group, platform);
    const sites = Array.from({ length: total }, (_, i) =>
      wordpressSite(`s${i + 1}.scale.bench.test`, platform.name, DB_HOST_NAME),
    );
    // A verification after every tenth of the sites (100, 200, ... 1,000 by default): the growth curve.
    const block = Math.max(1, Math.round(total / 10));
    const checkpoints = [
      ...new Set([...Array.from({ length: Math.floor(total / block) }, (_, i) => (i + 1) * block), total]),
    ];
    let installed = 0;
    const verifyAt = async (count: number): Promise<void> => {
      try {
        const r = await verifyClusterNodes(ctx, group, [platform], sites.slice(0, count), [db]);
        results.verify.push({ sites: count, seconds: r.seconds, ok: true });
        log(`  verify ${members} x ${count}: ${r.seconds.toFixed(2)} s`);
      } catch (e) {
        results.verify.push({ sites: count, seconds: 0, ok: false, error: errorText(e) });
      }
    };
    // Blocks alternate between one worker and two (same hosts), so that both are measured at about the same number
    // of sites: the rate falls as sites grow, and a first half / second half split would charge that to two workers.
    // Blocks are installed whole; after the deadline (--scale-minutes) no new block starts.
    const deadline = rt.plan.scaleMinutes === undefined ? Infinity : Date.now() + rt.plan.scaleMinutes * 60_000;
    let second: ChildProcess | undefined;
    const useWorkers = async (n: 1 | 2): Promise<void> => {
      if (n === 2 && !second) {
        second = startStackWorker(stack!, 2);
        await new Promise((r) => setTimeout(r, 5000));
      } else if (n === 1 && second) {
        const exited = new Promise((r) => second!.once('exit', r));
        second.kill('SIGTERM');
        await Promise.race([exited, new Promise((r) => setTimeout(r, 30_000))]);
        second = undefined;
        // `stack down` stops the recorded pids: this one is gone, and its number may be another process's soon.
        delete stack!.pids['worker-2'];
        const file = path.join(dir, 'stack.json');
        const state = JSON.parse(readFileSync(file, 'utf8')) as { pids: Record<string, number> };
        delete state.pids['worker-2'];
        writeFileSync(file, JSON.stringify(state, null, 2), { mode: 0o600 });
      }
    };
    const byWorkers = new Map<number, { sites: number; seconds: number; breakdowns: WorkflowBreakdown[] }>([
      [1, { sites: 0, seconds: 0, breakdowns: [] }],
      [2, { sites: 0, seconds: 0, breakdowns: [] }],
    ]);
    let error: string | undefined;
    try {
      for (const [i, bound] of checkpoints.entries()) {
        if (Date.now() > deadline) {
          log(`  deadline reached after ${installed} sites`);
          break;
        }
        const workers = i % 2 === 0 ? 1 : 2;
        await useWorkers(workers);
        const batch = sites.slice(installed, bound);
        const phase = byWorkers.get(workers)!;
        const cpu0 = machineCpuSeconds();
        const seconds = await installAll(
          ctx,
          group,
          platform,
          batch,
          db,
          concurrency,
          (n) => {
            if (n % 25 === 0) log(`  ${installed + n}/${total} installed (${workers} worker(s))`);
          },
          phase.breakdowns,
          results.failedInstalls,
        );
        const cpu = machineCpuSeconds() - cpu0;
        phase.sites += batch.length;
        phase.seconds += seconds;
        results.blocks.push({
          from: installed + 1,
          to: bound,
          workers,
          seconds,
          sitesPerMinute: (batch.length / seconds) * 60,
          cpuSecondsPerSite: cpu / batch.length,
          load: os.loadavg()[0]!,
        });
        log(
          `  sites ${installed + 1}-${bound}: ${((batch.length / seconds) * 60).toFixed(1)} sites/min (${workers} worker(s)), ` +
            `${(cpu / batch.length).toFixed(1)} CPU-s per site, load ${os.loadavg()[0]!.toFixed(1)}`,
        );
        installed = bound;
        await verifyAt(installed);
      }
    } catch (e) {
      error = errorText(e);
      log(`  install stopped: ${error}`);
    }
    for (const [workers, phase] of byWorkers) {
      if (phase.sites === 0 && !error) continue;
      results.phases.push({
        workers,
        sites: phase.sites,
        seconds: phase.seconds,
        sitesPerMinute: phase.seconds > 0 ? (phase.sites / phase.seconds) * 60 : 0,
        ...(error ? { error } : {}),
        ...(phase.breakdowns.length > 0 ? { profile: profileOf(phase.breakdowns) } : {}),
      });
    }
    results.loadAverage = os.loadavg();
    // A resync of every site at the end: nothing to repair, but it looks at every site on every member.
    try {
      const r = await resyncCluster(ctx, group, [platform], sites.slice(0, installed), [db]);
      results.resync = { sites: installed, seconds: r.seconds };
      log(
        `  resync ${members} x ${installed}: ${r.seconds.toFixed(2)} s${r.notes.length ? ` (${r.notes.length} note(s))` : ''}`,
      );
    } catch (e) {
      results.resync = { sites: installed, seconds: 0, error: errorText(e) };
    }
    // Largest history of every workflow the run started (describe reports events and bytes).
    for await (const w of client.workflow.list()) {
      results.workflowsListed++;
      const { raw } = await client.workflow.getHandle(w.workflowId, w.runId).describe();
      const events = Number(raw.workflowExecutionInfo?.historyLength ?? 0);
      const bytes = Number(raw.workflowExecutionInfo?.historySizeBytes ?? 0);
      if (results.resync && w.type === 'ResyncCluster') Object.assign(results.resync, { events, bytes });
      const kind = results.historyByType[w.type] ?? { workflows: 0, maxEvents: 0, maxBytes: 0 };
      results.historyByType[w.type] = {
        workflows: kind.workflows + 1,
        maxEvents: Math.max(kind.maxEvents, events),
        maxBytes: Math.max(kind.maxBytes, bytes),
      };
      if (!results.largestHistory || events > results.largestHistory.events) {
        results.largestHistory = {
          workflowId: w.workflowId,
          events,
          bytes,
          eventsPct: (events / HISTORY_LIMIT_EVENTS) * 100,
          bytesPct: (bytes / HISTORY_LIMIT_BYTES) * 100,
        };
      }
    }
    const token = readFileSync(path.join(dir, 'sitefleet', 'api-token'), 'utf8').trim();
    for (let i = 0; i < 5; i++) {
      const t0 = performance.now();
      const res = await fetch(`${a.api}/v1/operations`, { headers: { authorization: `Bearer ${token}` } });
      await res.text();
      if (!res.ok) throw new Error(`GET /v1/operations answered ${res.status}`);
      results.apiListMs.push(performance.now() - t0);
    }
  } catch (e) {
    log(`  scale stopped: ${errorText(e)}`);
    results.phases.push({ workers: 0, sites: 0, seconds: 0, sitesPerMinute: 0, error: errorText(e) });
  } finally {
    await connection?.close();
    await stackDown(dir, () => undefined).catch(() => undefined);
    await fs.rm(dir, { recursive: true, force: true }).catch(() => undefined);
  }
  log(renderScaleTable(results));
  await fs.mkdir(rt.plan.outDir, { recursive: true });
  const file = path.join(rt.plan.outDir, `scale-${new Date().toISOString().replace(/[:.]/g, '-')}.json`);
  await fs.writeFile(file, JSON.stringify(results, null, 2));
  log(`  scale results: ${file}`);
  return [];
}
