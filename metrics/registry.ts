/**
 * Prometheus metrics of a worker, on two ports:
 * - the Temporal SDK's own (task latencies, slots, polls, sticky cache...), exported by the core runtime
 *   (`installRuntimeMetrics`, SITEFLEET_RUNTIME_METRICS_ADDRESS);
 * - sitefleet's (bytes and files synced per host, check results per node, operation durations), written here in the
 *   Prometheus text format and served by `startMetricsServer` (SITEFLEET_METRICS_ADDRESS).
 *
 * Activities call `recordSync`, `recordCheck` and `recordOperation`. A metric never fails the work it measures:
 * a value that cannot be recorded (negative, NaN) is dropped with one warning per metric.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Runtime, type RuntimeOptions } from '@temporalio/worker';

/**
 * Installs the Temporal runtime with its Prometheus exporter on `bindAddress` (`host:port`, served at /metrics).
 * Must run once per process, before any NativeConnection or Worker is created (they install a default runtime).
 */
export function installRuntimeMetrics(
  bindAddress: string,
  options: Omit<RuntimeOptions, 'telemetryOptions'> = {},
): Runtime {
  return Runtime.install({ ...options, telemetryOptions: { metrics: { prometheus: { bindAddress } } } });
}

type LabelValues = readonly string[];

function escapeLabel(value: string): string {
  return value.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n');
}

function escapeHelp(value: string): string {
  return value.replace(/\\/g, '\\\\').replace(/\n/g, '\\n');
}

function formatNumber(value: number): string {
  if (value === Infinity) return '+Inf';
  if (value === -Infinity) return '-Inf';
  return Number.isNaN(value) ? 'NaN' : String(value);
}

function labelText(names: readonly string[], values: LabelValues, extra?: [string, string]): string {
  const pairs = names.map((name, i) => `${name}="${escapeLabel(values[i] ?? '')}"`);
  if (extra) pairs.push(`${extra[0]}="${escapeLabel(extra[1])}"`);
  return pairs.length > 0 ? `{${pairs.join(',')}}` : '';
}

const METRIC_NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const LABEL_NAME = /^[a-zA-Z_][a-zA-Z0-9_]*$/;

abstract class Metric {
  private warned = false;

  constructor(
    readonly name: string,
    readonly help: string,
    readonly labelNames: readonly string[],
  ) {
    if (!METRIC_NAME.test(name)) throw new Error(`metric name "${name}" is not a valid Prometheus name`);
    for (const label of labelNames) {
      if (!LABEL_NAME.test(label) || label === 'le') throw new Error(`label "${label}" of ${name} is not allowed`);
    }
  }

  protected key(values: LabelValues): string {
    if (values.length !== this.labelNames.length) {
      throw new Error(`${this.name} takes labels (${this.labelNames.join(', ')}), got ${values.length} values`);
    }
    return JSON.stringify(values);
  }

  protected accepts(value: number): boolean {
    if (Number.isFinite(value) && value >= 0) return true;
    if (!this.warned) {
      this.warned = true;
      console.warn(`metrics: dropped ${this.name} sample ${value} (must be a finite number >= 0)`);
    }
    return false;
  }

  abstract render(): string[];
}

export class Counter extends Metric {
  private readonly series = new Map<string, { labels: LabelValues; value: number }>();

  inc(labels: LabelValues, amount = 1): void {
    if (!this.accepts(amount)) return;
    const key = this.key(labels);
    const entry = this.series.get(key) ?? { labels: [...labels], value: 0 };
    entry.value += amount;
    this.series.set(key, entry);
  }

  /** The current value of one series (0 when never incremented). */
  get(labels: LabelValues): number {
    return this.series.get(this.key(labels))?.value ?? 0;
  }

  render(): string[] {
    const lines = [`# HELP ${this.name} ${escapeHelp(this.help)}`, `# TYPE ${this.name} counter`];
    for (const { labels, value } of this.series.values()) {
      lines.push(`${this.name}${labelText(this.labelNames, labels)} ${formatNumber(value)}`);
    }
    return lines;
  }
}

export class Histogram extends Metric {
  private readonly series = new Map<string, { labels: LabelValues; counts: number[]; sum: number; count: number }>();
  readonly buckets: readonly number[];

  constructor(name: string, help: string, labelNames: readonly string[], buckets: readonly number[]) {
    super(name, help, labelNames);
    const sorted = [...buckets].sort((a, b) => a - b);
    if (sorted.length === 0 || sorted.some((b, i) => !Number.isFinite(b) || (i > 0 && b === sorted[i - 1]))) {
      throw new Error(`${name}: buckets must be distinct finite numbers`);
    }
    this.buckets = sorted;
  }

  observe(labels: LabelValues, value: number): void {
    if (!this.accepts(value)) return;
    const key = this.key(labels);
    const entry = this.series.get(key) ?? { labels: [...labels], counts: this.buckets.map(() => 0), sum: 0, count: 0 };
    this.buckets.forEach((bound, i) => {
      if (value <= bound) entry.counts[i]! += 1;
    });
    entry.sum += value;
    entry.count += 1;
    this.series.set(key, entry);
  }

  render(): string[] {
    const lines = [`# HELP ${this.name} ${escapeHelp(this.help)}`, `# TYPE ${this.name} histogram`];
    for (const { labels, counts, sum, count } of this.series.values()) {
      this.buckets.forEach((bound, i) => {
        const le: [string, string] = ['le', formatNumber(bound)];
        lines.push(`${this.name}_bucket${labelText(this.labelNames, labels, le)} ${counts[i]}`);
      });
      lines.push(`${this.name}_bucket${labelText(this.labelNames, labels, ['le', '+Inf'])} ${count}`);
      lines.push(`${this.name}_sum${labelText(this.labelNames, labels)} ${formatNumber(sum)}`);
      lines.push(`${this.name}_count${labelText(this.labelNames, labels)} ${count}`);
    }
    return lines;
  }
}

/** A set of metrics rendered together in the Prometheus text exposition format (version 0.0.4). */
export class MetricsRegistry {
  private readonly metrics = new Map<string, Metric>();

  counter(name: string, help: string, labelNames: readonly string[]): Counter {
    return this.add(new Counter(name, help, labelNames));
  }

  histogram(name: string, help: string, labelNames: readonly string[], buckets: readonly number[]): Histogram {
    return this.add(new Histogram(name, help, labelNames, buckets));
  }

  render(): string {
    return [...this.metrics.values()].flatMap((metric) => metric.render()).join('\n') + '\n';
  }

  private add<M extends Metric>(metric: M): M {
    if (this.metrics.has(metric.name)) throw new Error(`metric ${metric.name} is registered twice`);
    this.metrics.set(metric.name, metric);
    return metric;
  }
}

/** sitefleet's metrics, as one object so tests (and a second registry) can build their own. */
export function createSitefleetMetrics(registry = new MetricsRegistry()) {
  return {
    registry,
    syncs: registry.counter('sitefleet_syncs_total', 'Completed rsync runs to each host.', ['host']),
    syncFiles: registry.counter('sitefleet_sync_files_total', 'Files transferred by rsync to each host.', ['host']),
    syncBytes: registry.counter('sitefleet_sync_bytes_total', 'Bytes transferred by rsync to each host.', ['host']),
    checks: registry.counter('sitefleet_checks_total', 'Node checks run, by node, check and result (ok or failed).', [
      'node',
      'check',
      'result',
    ]),
    operationSeconds: registry.histogram(
      'sitefleet_operation_duration_seconds',
      'Duration of sitefleet operations (workflows), by workflow type and outcome.',
      ['type', 'outcome'],
      [1, 5, 10, 30, 60, 120, 300, 600, 1200, 1800, 3600, 7200],
    ),
  };
}

export type SitefleetMetrics = ReturnType<typeof createSitefleetMetrics>;

/** The process-wide metrics the record functions write to and `startMetricsServer` serves by default. */
export const sitefleetMetrics: SitefleetMetrics = createSitefleetMetrics();

/** One finished rsync to `host`: how many files and bytes it transferred. */
export function recordSync(host: string, files: number, bytes: number, metrics = sitefleetMetrics): void {
  metrics.syncs.inc([host]);
  metrics.syncFiles.inc([host], files);
  metrics.syncBytes.inc([host], bytes);
}

/** One check (`nginx-config`, `nfs-mount`, `http-probe`...) on `node`, passed or not. */
export function recordCheck(node: string, check: string, ok: boolean, metrics = sitefleetMetrics): void {
  metrics.checks.inc([node, check, ok ? 'ok' : 'failed']);
}

/** One finished operation: its workflow type, duration and outcome (`completed`, `failed`, `cancelled`...). */
export function recordOperation(type: string, seconds: number, outcome: string, metrics = sitefleetMetrics): void {
  metrics.operationSeconds.observe([type, outcome], seconds);
}

export interface RunningMetricsServer {
  server: Server;
  /** For example `http://127.0.0.1:9465/metrics`. */
  url: string;
  close(): Promise<void>;
}

/** Splits `host:port` / `[v6]:port`; port 0 picks a free one. */
export function parseBindAddress(bindAddress: string): { host: string; port: number } {
  const match = /^(?:\[([^\]]+)\]|([^:]+)):(\d+)$/.exec(bindAddress.trim());
  const port = Number(match?.[3]);
  if (!match || !Number.isInteger(port) || port > 65535) {
    throw new Error(`metrics address "${bindAddress}" must be host:port, for example 0.0.0.0:9465`);
  }
  return { host: (match[1] ?? match[2])!, port };
}

/** Serves `registry` at GET /metrics (and GET /healthz) on `bindAddress` (`host:port`). */
export async function startMetricsServer(
  bindAddress: string,
  registry: MetricsRegistry = sitefleetMetrics.registry,
): Promise<RunningMetricsServer> {
  const { host, port } = parseBindAddress(bindAddress);
  const server = createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    if (req.method === 'GET' && path === '/metrics') {
      const body = registry.render();
      res.writeHead(200, { 'Content-Type': 'text/plain; version=0.0.4; charset=utf-8' });
      res.end(body);
    } else if (req.method === 'GET' && path === '/healthz') {
      res.writeHead(200, { 'Content-Type': 'text/plain' });
      res.end('ok\n');
    } else {
      res.writeHead(404, { 'Content-Type': 'text/plain' });
      res.end('not found: GET /metrics\n');
    }
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const bound = (server.address() as AddressInfo).port;
  const urlHost = host === '0.0.0.0' ? '127.0.0.1' : host.includes(':') ? `[${host}]` : host;
  return {
    server,
    url: `http://${urlHost}:${bound}/metrics`,
    close: () =>
      new Promise<void>((resolve, reject) => {
        server.close((err) => (err ? reject(err) : resolve()));
        server.closeAllConnections();
      }),
  };
}
