import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { server, startHarness, startStubWorker, type Harness } from './harness';

/** Polls GET /v1/operations/:id until the operation closes; returns every view seen. */
async function untilClosed(h: Harness, id: string) {
  const views = [];
  for (let i = 0; i < 100; i++) {
    const res = await h.request('GET', `/v1/operations/${id}`);
    assert.equal(res.status, 200);
    views.push(res.body);
    if (res.body.status !== 'RUNNING') return views;
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error(`${id} did not close`);
}

void describe('operation lifecycle (stand-in workflows on a real worker)', () => {
  let h: Harness;
  let worker: { stop(): Promise<void> };

  before(async () => {
    h = await startHarness();
    worker = await startStubWorker(h);
    for (const name of ['web1', 'web2', 'web3']) await h.store.create('server', server(name));
    await h.store.create('server', server('db1', { http: undefined, db: { type: 'mariadb' } }));
    await h.store.create('cluster', { name: 'cl', members: ['web1', 'web2'] });
    for (const name of ['wp', 'wp2']) {
      await h.store.create('platform', {
        name,
        target: { kind: 'cluster', name: 'cl' },
        source: { type: 'path', path: '/srv/wp' },
        profile: 'wordpress',
      });
    }
    for (const domain of ['a.example.com', 'b.example.com', 'fail.example.com', 'c.example.com']) {
      await h.store.create('site', { domain, platform: 'wp', dbServer: 'db1' });
    }
  });
  after(async () => {
    await worker?.stop();
    await h?.close();
  });

  void test('shows per-node progress while an operation runs, then its result', async () => {
    const started = await h.request('POST', '/v1/sites/a.example.com/install');
    assert.equal(started.status, 202);
    const views = await untilClosed(h, 'site/a.example.com');
    const running = views.filter((v) => v.status === 'RUNNING' && v.progress);
    assert.ok(running.length > 0, 'progress was visible while running');
    assert.deepEqual(Object.keys(running[0].progress.nodes).sort(), ['web1', 'web2']);
    assert.ok(running.some((v) => v.progress.nodes.web1.state === 'running'));
    const last = views.at(-1);
    assert.equal(last.status, 'COMPLETED');
    assert.deepEqual(last.result, { operation: 'InstallSiteOnCluster', nodes: ['web1', 'web2'] });
    assert.equal((await h.store.getOperation('site/a.example.com'))?.status, 'COMPLETED');
  });

  void test('a failed operation reports its failure and leaves the inventory as it was', async () => {
    const before = (await h.store.dump()).sites;
    assert.equal((await h.request('POST', '/v1/sites/fail.example.com/delete')).status, 202);
    const last = (await untilClosed(h, 'site/fail.example.com')).at(-1);
    assert.equal(last.status, 'FAILED');
    assert.match(last.failure, /stub failure on web1/);
    assert.deepEqual((await h.store.dump()).sites, before);
  });

  void test('completed operations update the inventory: delete forgets, disable and migrate change the site', async () => {
    assert.equal((await h.request('POST', '/v1/sites/b.example.com/disable')).status, 202);
    assert.equal((await untilClosed(h, 'site/b.example.com')).at(-1).status, 'COMPLETED');
    assert.equal((await h.store.get('site', 'b.example.com'))?.status, 'disabled');

    assert.equal((await h.request('POST', '/v1/sites/b.example.com/migrate', { platform: 'wp2' })).status, 202);
    assert.equal((await untilClosed(h, 'site/b.example.com')).at(-1).status, 'COMPLETED');
    assert.equal((await h.store.get('site', 'b.example.com'))?.platform, 'wp2');

    assert.equal((await h.request('DELETE', '/v1/sites/b.example.com')).status, 202);
    assert.equal((await untilClosed(h, 'site/b.example.com')).at(-1).status, 'COMPLETED');
    assert.equal(await h.store.get('site', 'b.example.com'), undefined);
    assert.equal((await h.request('GET', '/v1/sites/b.example.com')).status, 404);
  });

  void test('the background refresh applies effects of operations nobody watched', async () => {
    assert.equal((await h.request('POST', '/v1/clusters/cl/members', { server: 'web3' })).status, 202);
    await h.env.client.workflow.getHandle('cluster/cl').result();
    assert.deepEqual((await h.store.get('cluster', 'cl'))?.members, ['web1', 'web2']);
    assert.equal(await h.api.operations.refreshRunning(), 1);
    assert.deepEqual((await h.store.get('cluster', 'cl'))?.members, ['web1', 'web2', 'web3']);
    // Applied once: a second refresh and a later GET change nothing.
    assert.equal(await h.api.operations.refreshRunning(), 0);
    assert.equal((await h.request('GET', '/v1/operations/cluster/cl')).body.status, 'COMPLETED');
    assert.deepEqual((await h.store.get('cluster', 'cl'))?.members, ['web1', 'web2', 'web3']);
  });

  void test('a run started by a schedule is reported like any operation', async () => {
    const created = await h.request('POST', '/v1/schedules', {
      action: 'verify',
      target: { kind: 'cluster', name: 'cl' },
      every: '1d',
    });
    assert.equal(created.status, 201);
    await h.env.client.schedule.getHandle('verify/cluster/cl').trigger();
    let runs: { workflowId: string; runId: string }[] = [];
    for (let i = 0; i < 50 && runs.length === 0; i++) {
      await new Promise((r) => setTimeout(r, 100));
      runs = (await h.request('GET', '/v1/schedules/verify/cluster/cl')).body.recentActions;
    }
    assert.equal(runs.length, 1);
    assert.match(runs[0]!.workflowId, /^verify\/cluster\/cl-\d{4}-\d\d-\d\dT/);
    const last = (await untilClosed(h, runs[0]!.workflowId)).at(-1);
    assert.equal(last.status, 'COMPLETED');
    assert.equal(last.workflowType, 'VerifyClusterNodes');
    assert.deepEqual(last.result.nodes, ['web1', 'web2', 'web3']);
    assert.equal((await h.request('DELETE', '/v1/schedules/verify/cluster/cl')).status, 204);
  });
});
