/**
 * The Temporal runtime with its Prometheus exporter: one endpoint per worker process (SITEFLEET_METRICS_ADDRESS,
 * served at /metrics) with the SDK's own metrics (`temporal_*`: task latencies, slots, polls, failures) and
 * sitefleet's (metrics/sitefleet.ts), which activities and workflows record through the SDK's `metricMeter`.
 */
import { Runtime, type RuntimeOptions } from '@temporalio/worker';
import { SITEFLEET_HISTOGRAM_BUCKETS } from './sitefleet';

/** Checks `host:port` / `[v6]:port` (port 0 picks a free one), so that a bad address is refused before binding. */
export function parseBindAddress(bindAddress: string): { host: string; port: number } {
  const match = /^(?:\[([^\]]+)\]|([^:]+)):(\d+)$/.exec(bindAddress.trim());
  const port = Number(match?.[3]);
  if (!match || !Number.isInteger(port) || port > 65535) {
    throw new Error(`SITEFLEET_METRICS_ADDRESS "${bindAddress}" must be host:port, for example 0.0.0.0:9464`);
  }
  return { host: (match[1] ?? match[2])!, port };
}

/**
 * Installs the Temporal runtime with its Prometheus exporter on `bindAddress` (`host:port`, served at /metrics).
 * Must run once per process, before any NativeConnection or Worker is created (they install a default runtime).
 */
export function installRuntimeMetrics(
  bindAddress: string,
  options: Omit<RuntimeOptions, 'telemetryOptions'> = {},
): Runtime {
  parseBindAddress(bindAddress);
  return Runtime.install({
    ...options,
    telemetryOptions: {
      metrics: { prometheus: { bindAddress, histogramBucketOverrides: SITEFLEET_HISTOGRAM_BUCKETS } },
    },
  });
}
