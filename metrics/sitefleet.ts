/**
 * sitefleet's own metrics, recorded through the Temporal SDK's `MetricMeter` and exported by the runtime's
 * Prometheus exporter next to the SDK's `temporal_*` metrics (metrics/runtime.ts, SITEFLEET_METRICS_ADDRESS).
 *
 * Activities pass `metricMeter` from @temporalio/activity (its series also carry `namespace`, `taskQueue` and
 * `activityType`); workflows pass `metricMeter` from @temporalio/workflow (`workflowType`; nothing is recorded
 * while a workflow replays). No Node builtins here: workflow code imports this file.
 *
 * A metric never fails the work it measures: a value that cannot be recorded (negative, NaN) or a meter that
 * refuses (outside an activity) is dropped with one warning per metric.
 */
import type { MetricMeter, MetricTags } from '@temporalio/common';

/** Name, description and (for histograms) buckets of every sitefleet metric. */
export const SITEFLEET_METRICS = {
  syncs: { name: 'sitefleet_syncs_total', help: 'Completed rsync runs to each host.' },
  syncFiles: { name: 'sitefleet_sync_files_total', help: 'Files transferred by rsync to each host.' },
  syncBytes: { name: 'sitefleet_sync_bytes_total', help: 'Bytes transferred by rsync to each host.' },
  checks: { name: 'sitefleet_checks_total', help: 'Node checks run, by node, check and result (ok or failed).' },
  operationSeconds: {
    name: 'sitefleet_operation_duration_seconds',
    help: 'Duration of sitefleet operations (workflows), by workflow type and outcome.',
    buckets: [1, 5, 10, 30, 60, 120, 300, 600, 1200, 1800, 3600, 7200],
  },
} as const;

/** The buckets the runtime's exporter uses for sitefleet's histograms (metrics/runtime.ts). */
export const SITEFLEET_HISTOGRAM_BUCKETS: Record<string, number[]> = {
  [SITEFLEET_METRICS.operationSeconds.name]: [...SITEFLEET_METRICS.operationSeconds.buckets],
};

const warned = new Set<string>();

function dropped(name: string, why: string): void {
  if (warned.has(name)) return;
  warned.add(name);
  console.warn(`metrics: dropped a ${name} sample (${why})`);
}

function accepts(name: string, value: number): boolean {
  if (Number.isFinite(value) && value >= 0) return true;
  dropped(name, `${value} must be a finite number >= 0`);
  return false;
}

function safely(name: string, record: () => void): void {
  try {
    record();
  } catch (err) {
    dropped(name, err instanceof Error ? err.message : String(err));
  }
}

function add(meter: MetricMeter, metric: { name: string; help: string }, value: number, tags: MetricTags): void {
  if (!accepts(metric.name, value)) return;
  safely(metric.name, () => meter.createCounter(metric.name, undefined, metric.help).add(value, tags));
}

/** One finished rsync to `host`: how many files and bytes it transferred. */
export function recordSync(meter: MetricMeter, host: string, files: number, bytes: number): void {
  add(meter, SITEFLEET_METRICS.syncs, 1, { host });
  add(meter, SITEFLEET_METRICS.syncFiles, files, { host });
  add(meter, SITEFLEET_METRICS.syncBytes, bytes, { host });
}

/** One check (`config-test`, `nfs-mount`, `http-probe`...) on `node`, passed or not. */
export function recordCheck(meter: MetricMeter, node: string, check: string, ok: boolean): void {
  add(meter, SITEFLEET_METRICS.checks, 1, { node, check, result: ok ? 'ok' : 'failed' });
}

/** How an operation ended. */
export type OperationOutcome = 'completed' | 'failed' | 'cancelled';

/** One finished operation: its duration and outcome (the workflow meter adds `workflowType`). */
export function recordOperation(meter: MetricMeter, seconds: number, outcome: OperationOutcome): void {
  const metric = SITEFLEET_METRICS.operationSeconds;
  if (!accepts(metric.name, seconds)) return;
  safely(metric.name, () =>
    meter.createHistogram(metric.name, 'float', 's', metric.help).record(seconds, { outcome }),
  );
}
