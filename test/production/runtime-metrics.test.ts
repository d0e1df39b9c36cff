// Runtime.install can run once per process: this file installs it before any connection or worker exists, and
// holds every test that needs the Temporal runtime's Prometheus exporter.
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { createServer, type AddressInfo } from 'node:net';
import { after, before, describe, test } from 'node:test';
import { TestWorkflowEnvironment } from '@temporalio/testing';
import { DefaultLogger, Worker } from '@temporalio/worker';
import { ensureTemporalCli } from '../../devserver/temporal-cli';
import { installRuntimeMetrics } from '../../metrics/registry';
import * as activities from './activities';

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise((resolve) => server.close(resolve));
  return port;
}

async function scrape(url: string): Promise<{ status: number; type: string | null; body: string }> {
  const res = await fetch(url);
  return { status: res.status, type: res.headers.get('content-type'), body: await res.text() };
}

void describe('Temporal runtime metrics', () => {
  let url: string;
  let env: TestWorkflowEnvironment;

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

  void test('a worker running a workflow shows up in the Temporal metrics', async () => {
    const path = await ensureTemporalCli();
    env = await TestWorkflowEnvironment.createLocal({
      server: { executable: { type: 'existing-path', path }, ui: false, extraArgs: ['--log-level', 'error'] },
    });
    const taskQueue = `metrics-${randomUUID()}`;
    const worker = await Worker.create({
      connection: env.nativeConnection,
      taskQueue,
      workflowsPath: require.resolve('./workflows'),
      activities,
    });
    await worker.runUntil(
      env.client.workflow
        .execute('SecretRoundTrip', { taskQueue, workflowId: `metrics-${randomUUID()}`, args: ['not a secret'] })
        .catch(() => undefined),
    );
    const { status, body } = await scrape(url);
    assert.equal(status, 200);
    for (const name of ['temporal_workflow_failed', 'temporal_activity_execution_failed', 'temporal_worker_start']) {
      assert.match(body, new RegExp(`^${name}\\{[^}]*task_queue="${taskQueue}"`, 'm'), `${name} for the test queue`);
    }
  });
});
