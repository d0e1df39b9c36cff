import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import {
  parseBindAddress,
  recordCheck,
  recordOperation,
  recordSync,
  startMetricsServer,
  type RunningMetricsServer,
} from '../../metrics/registry';

/** One sample line of the Prometheus text format: name, labels, value. */
const SAMPLE = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(?:[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\["\\n])*",?)*\})? (\S+)$/;

function sampleValue(body: string, series: string): number | undefined {
  const line = body.split('\n').find((l) => l.startsWith(`${series} `));
  return line === undefined ? undefined : Number(line.slice(series.length + 1));
}

void describe("sitefleet's metrics endpoint", () => {
  let server: RunningMetricsServer;
  let body: string;
  let contentType: string | null;

  before(async () => {
    server = await startMetricsServer('127.0.0.1:0');
    recordSync('web1.example.net', 10, 2048);
    recordSync('web1.example.net', 5, 1000);
    recordSync('web2.example.net', 0, 0);
    recordSync('web2.example.net', Number.NaN, -1); // a bad parse never fails the sync it measures
    recordCheck('web1', 'nginx-config', true);
    recordCheck('web1', 'nginx-config', false);
    recordCheck('web1', 'nginx-config', true);
    recordCheck('odd"node\\\n', 'http-probe', true);
    recordOperation('InstallSiteOnCluster', 42.5, 'completed');
    recordOperation('InstallSiteOnCluster', 3, 'completed');
    recordOperation('InstallSiteOnCluster', 4000, 'failed');
    const res = await fetch(server.url);
    contentType = res.headers.get('content-type');
    body = await res.text();
  });
  after(async () => {
    await server?.close();
  });

  void test('serves the Prometheus text format, every line well formed', () => {
    assert.equal(contentType, 'text/plain; version=0.0.4; charset=utf-8');
    for (const line of body.trimEnd().split('\n')) {
      if (line.startsWith('# HELP ') || line.startsWith('# TYPE ')) continue;
      assert.match(line, SAMPLE);
    }
    for (const name of [
      'sitefleet_sync_bytes_total',
      'sitefleet_checks_total',
      'sitefleet_operation_duration_seconds',
    ]) {
      assert.equal(body.split('\n').filter((l) => l.startsWith(`# TYPE ${name} `)).length, 1, `${name} typed once`);
    }
  });

  void test('counts files and bytes synced per host', () => {
    assert.equal(sampleValue(body, 'sitefleet_sync_files_total{host="web1.example.net"}'), 15);
    assert.equal(sampleValue(body, 'sitefleet_sync_bytes_total{host="web1.example.net"}'), 3048);
    assert.equal(sampleValue(body, 'sitefleet_syncs_total{host="web1.example.net"}'), 2);
    assert.equal(sampleValue(body, 'sitefleet_syncs_total{host="web2.example.net"}'), 2);
    assert.equal(sampleValue(body, 'sitefleet_sync_bytes_total{host="web2.example.net"}'), 0, 'bad sample dropped');
  });

  void test('counts check results per node, check and result, escaping label values', () => {
    assert.equal(sampleValue(body, 'sitefleet_checks_total{node="web1",check="nginx-config",result="ok"}'), 2);
    assert.equal(sampleValue(body, 'sitefleet_checks_total{node="web1",check="nginx-config",result="failed"}'), 1);
    assert.equal(
      sampleValue(body, 'sitefleet_checks_total{node="odd\\"node\\\\\\n",check="http-probe",result="ok"}'),
      1,
    );
  });

  void test('records operation durations per workflow type as a cumulative histogram', () => {
    const series = (le: string) =>
      `sitefleet_operation_duration_seconds_bucket{type="InstallSiteOnCluster",outcome="completed",le="${le}"}`;
    assert.equal(sampleValue(body, series('1')), 0);
    assert.equal(sampleValue(body, series('5')), 1);
    assert.equal(sampleValue(body, series('60')), 2);
    assert.equal(sampleValue(body, series('+Inf')), 2);
    const done = '{type="InstallSiteOnCluster",outcome="completed"}';
    assert.equal(sampleValue(body, `sitefleet_operation_duration_seconds_sum${done}`), 45.5);
    assert.equal(sampleValue(body, `sitefleet_operation_duration_seconds_count${done}`), 2);
    const failed = 'sitefleet_operation_duration_seconds_bucket{type="InstallSiteOnCluster",outcome="failed",le=';
    assert.equal(sampleValue(body, `${failed}"3600"}`), 0);
    assert.equal(sampleValue(body, `${failed}"7200"}`), 1);
  });

  void test('answers /healthz and refuses other paths', async () => {
    const base = server.url.replace(/\/metrics$/, '');
    assert.equal((await fetch(`${base}/healthz`)).status, 200);
    assert.equal((await fetch(`${base}/nope`)).status, 404);
  });

  void test('takes host:port bind addresses, IPv6 included', () => {
    assert.deepEqual(parseBindAddress('0.0.0.0:9465'), { host: '0.0.0.0', port: 9465 });
    assert.deepEqual(parseBindAddress('[::1]:9465'), { host: '::1', port: 9465 });
    assert.throws(() => parseBindAddress('9465'), /must be host:port/);
  });
});
