// Runtime.install can run once per process: this file installs it before any connection or worker exists, and
// holds every test that needs the Temporal runtime's Prometheus exporter, which serves the SDK's metrics and
// sitefleet's (recorded through the SDK's metricMeter: metrics/sitefleet.ts, workflows/operation-metrics.ts).
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { setTimeout } from 'node:timers/promises';
import { createServer, type AddressInfo } from 'node:net';
import { after, before, describe, test } from 'node:test';
import { TestWorkflowEnvironment } from '@temporalio/testing';
import { DefaultLogger, Worker } from '@temporalio/worker';
import { ensureTemporalCli } from '../../devserver/temporal-cli';
import { installRuntimeMetrics, parseBindAddress } from '../../metrics/runtime';
import { SITEFLEET_WORKFLOW_INTERCEPTOR_MODULES } from '../../workers/bundler-options';
import { loadSettings } from '../../config/settings';
import * as activities from './activities';

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise((resolve) => server.close(resolve));
  return port;
}

/** One sample line of the Prometheus text format: name, labels, value. */
const SAMPLE = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(?:[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\["\\n])*",?)*\})? (\S+)$/;

/**
 * The value of the one series of `name` whose labels include all of `labels` (the SDK adds namespace, taskQueue
 * and activityType or workflowType); undefined when there is none, an error when there are several.
 */
function sampleValue(body: string, name: string, labels: Record<string, string>): number | undefined {
  const wanted = Object.entries(labels).map(([k, v]) => `${k}="${v}"`);
  const lines = body.split('\n').filter((line) => {
    if (!line.startsWith(`${name}{`)) return false;
    const labelText = line.slice(name.length + 1, line.lastIndexOf('} '));
    return wanted.every((pair) => labelText.split(/,(?=[a-zA-Z_]+=")/).includes(pair));
  });
  assert.ok(lines.length <= 1, `one series of ${name} with ${wanted.join(',')}, got ${lines.join(' | ')}`);
  return lines[0] === undefined ? undefined : Number(lines[0].slice(lines[0].lastIndexOf(' ') + 1));
}

async function scrape(url: string): Promise<{ status: number; type: string | null; body: string }> {
  const res = await fetch(url);
  return { status: res.status, type: res.headers.get('content-type'), body: await res.text() };
}

void describe('Temporal runtime metrics', () => {
  let url: string;
  let env: TestWorkflowEnvironment;
  let taskQueue: string;
  let metricsBody = '';

  before(async () => {
    const port = await freePort();
    installRuntimeMetrics(`127.0.0.1:${port}`, { logger: new DefaultLogger('ERROR') });
    url = `http://127.0.0.1:${port}/metrics`;
  });
  after(async () => {
    await env?.teardown();
  });

  void test('the exporter answers on its bind address as soon as the runtime is installed', async () => {
    const { status, type } = await scrape(url);
    assert.equal(status, 200);
    assert.match(type ?? '', /^text\/plain/);
  });

  void test('a worker running workflows shows up in the Temporal metrics', async () => {
    const path = await ensureTemporalCli();
    env = await TestWorkflowEnvironment.createLocal({
      server: { executable: { type: 'existing-path', path }, ui: false, extraArgs: ['--log-level', 'error'] },
    });
    taskQueue = `metrics-${randomUUID()}`;
    const worker = await Worker.create({
      connection: env.nativeConnection,
      taskQueue,
      workflowsPath: require.resolve('./workflows'),
      interceptors: { workflowModules: SITEFLEET_WORKFLOW_INTERCEPTOR_MODULES },
      activities,
    });
    const start = (ms: number, work: boolean) =>
      env.client.workflow.start('RecordsWork', { taskQueue, workflowId: `metrics-${randomUUID()}`, args: [ms, work] });
    await worker.runUntil(async () => {
      const failing = env.client.workflow
        .execute('SecretRoundTrip', { taskQueue, workflowId: `metrics-${randomUUID()}`, args: ['not a secret'] })
        .catch(() => undefined);
      const done = await start(1500, true);
      const cancelled = await start(600_000, false);
      // Cancelled once it sleeps (a cancel racing its first workflow task would fail that task, which then runs again).
      while (!(await cancelled.fetchHistory()).events?.some((e) => e.timerStartedEventAttributes)) await setTimeout(50);
      await cancelled.cancel();
      await Promise.all([failing, done.result(), cancelled.result().catch(() => undefined)]);
    });
    const { status, body } = await scrape(url);
    assert.equal(status, 200);
    for (const name of ['temporal_workflow_failed', 'temporal_activity_execution_failed', 'temporal_worker_start']) {
      assert.match(body, new RegExp(`^${name}\\{[^}]*task_queue="${taskQueue}"`, 'm'), `${name} for the test queue`);
    }
    for (const line of body.trimEnd().split('\n')) {
      if (!line.startsWith('#')) assert.match(line, SAMPLE);
    }
    metricsBody = body;
  });

  const ours = (labels: Record<string, string>) => ({ taskQueue, ...labels });

  void test("sitefleet's sync counters, per host, from an activity's metricMeter", () => {
    const at = (name: string, host: string) => sampleValue(metricsBody, name, ours({ host }));
    assert.equal(at('sitefleet_sync_files_total', 'web1.example.net'), 15);
    assert.equal(at('sitefleet_sync_bytes_total', 'web1.example.net'), 3048);
    assert.equal(at('sitefleet_syncs_total', 'web1.example.net'), 2);
    assert.equal(at('sitefleet_syncs_total', 'web2.example.net'), 2);
    assert.equal(at('sitefleet_sync_bytes_total', 'web2.example.net'), 0, 'the bad sample was dropped');
    assert.match(metricsBody, /^sitefleet_syncs_total\{[^}]*activityType="recordSomeWork"/m);
    assert.equal(metricsBody.split('\n').filter((l) => l === '# TYPE sitefleet_sync_bytes_total counter').length, 1);
  });

  void test("sitefleet's check counters per node, check and result, label values escaped", () => {
    const checks = (labels: Record<string, string>) => sampleValue(metricsBody, 'sitefleet_checks_total', ours(labels));
    assert.equal(checks({ node: 'web1', check: 'nginx-config', result: 'ok' }), 2);
    assert.equal(checks({ node: 'web1', check: 'nginx-config', result: 'failed' }), 1);
    assert.equal(checks({ node: 'odd\\"node\\\\\\n', check: 'http-probe', result: 'ok' }), 1);
  });

  void test('the operation histogram is recorded at the end of every workflow, by type and outcome', () => {
    const name = 'sitefleet_operation_duration_seconds';
    assert.match(metricsBody, new RegExp(`^# TYPE ${name} histogram$`, 'm'));
    const done = ours({ workflowType: 'RecordsWork', outcome: 'completed' });
    assert.equal(sampleValue(metricsBody, `${name}_count`, done), 1);
    assert.equal(sampleValue(metricsBody, `${name}_bucket`, { ...done, le: '1' }), 0, 'it slept 1.5 s');
    assert.equal(sampleValue(metricsBody, `${name}_bucket`, { ...done, le: '5' }), 1);
    assert.equal(sampleValue(metricsBody, `${name}_bucket`, { ...done, le: '7200' }), 1, 'the sitefleet buckets');
    const sum = sampleValue(metricsBody, `${name}_sum`, done)!;
    assert.ok(sum >= 1.5 && sum < 60, `duration ${sum} s`);
    const cancelled = ours({ workflowType: 'RecordsWork', outcome: 'cancelled' });
    assert.equal(sampleValue(metricsBody, `${name}_count`, cancelled), 1);
    const failed = ours({ workflowType: 'SecretRoundTrip', outcome: 'failed' });
    assert.equal(sampleValue(metricsBody, `${name}_count`, failed), 1);
  });

  void test('the metrics address is host:port, and the old second address is refused by name', () => {
    assert.deepEqual(parseBindAddress('0.0.0.0:9464'), { host: '0.0.0.0', port: 9464 });
    assert.deepEqual(parseBindAddress('[::1]:9464'), { host: '::1', port: 9464 });
    assert.throws(() => parseBindAddress('9464'), /SITEFLEET_METRICS_ADDRESS "9464" must be host:port/);
    assert.throws(
      () => loadSettings({ SITEFLEET_RUNTIME_METRICS_ADDRESS: '0.0.0.0:9464' }),
      /SITEFLEET_RUNTIME_METRICS_ADDRESS=0\.0\.0\.0:9464: no longer read; SITEFLEET_METRICS_ADDRESS serves/,
    );
  });
});
