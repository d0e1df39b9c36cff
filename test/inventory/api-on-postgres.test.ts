/**
 * A representative API flow with the inventory on a real PostgreSQL server (the production stack's backend):
 * resources created over HTTP, refused input that leaves the inventory unchanged, and operations that start, run
 * on stand-in workflows and apply their inventory effect. The whole API suite runs on PostgreSQL too with
 * SITEFLEET_TEST_INVENTORY=postgres; this file keeps that path covered in every run.
 */
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { after, before, describe, test } from 'node:test';
import { Client } from 'pg';
import { server, startHarness, startStubWorker, type Harness } from '../api/harness';

/** Polls GET /v1/operations/:id until the operation closes; returns the last view. */
async function untilClosed(h: Harness, id: string) {
  for (let i = 0; i < 100; i++) {
    const res = await h.request('GET', `/v1/operations/${id}`);
    assert.equal(res.status, 200, JSON.stringify(res.body));
    if (res.body.status !== 'RUNNING') return res.body;
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error(`${id} did not close`);
}

void describe('API with the inventory on PostgreSQL', () => {
  let h: Harness;
  let worker: { stop(): Promise<void> } | undefined;

  /** Rows read straight from the inventory database, bypassing the store. */
  async function rows(sql: string): Promise<Record<string, unknown>[]> {
    const client = new Client({ connectionString: h.settings.inventoryUrl });
    await client.connect();
    try {
      return (await client.query(sql)).rows as Record<string, unknown>[];
    } finally {
      await client.end();
    }
  }

  before(async () => {
    h = await startHarness({ inventory: 'postgres' });
    worker = await startStubWorker(h);
  });
  after(async () => {
    await worker?.stop();
    await h?.close();
  });

  void test('answers the health check with the PostgreSQL inventory, and keeps no SQLite file', async () => {
    assert.equal(h.inventory, 'postgres');
    assert.match(h.settings.inventoryUrl ?? '', /^postgres:\/\/.*@127\.0\.0\.1:\d+\//);
    const health = await h.request('GET', '/v1/health', undefined, { token: null });
    assert.equal(health.status, 200);
    assert.deepEqual(health.body, { status: 'ok', inventory: 'ok', temporal: 'ok' });
    assert.equal(existsSync(h.settings.inventoryFile), false);
  });

  void test('creates servers, a pack, a cluster, platforms and sites over HTTP', async () => {
    for (const name of ['web1', 'web2', 'web3']) {
      assert.equal((await h.request('POST', '/v1/servers', server(name))).status, 201);
    }
    const db = await h.request('POST', '/v1/servers', server('db1', { http: undefined, db: { type: 'mariadb' } }));
    assert.equal(db.status, 201);
    const nfs = await h.request(
      'POST',
      '/v1/servers',
      server('nfs1', { http: undefined, nfs: { flavour: 'ganesha' } }),
    );
    assert.equal(nfs.status, 201);
    const pack = await h.request('POST', '/v1/packs', {
      name: 'pk',
      master: 'web1',
      slaves: ['web2'],
      share: { server: 'nfs1', clients: '10.0.0.0/24' },
    });
    assert.equal(pack.status, 201, JSON.stringify(pack.body));
    assert.equal((await h.request('POST', '/v1/clusters', { name: 'cl', members: ['web2', 'web3'] })).status, 201);
    for (const name of ['wp', 'wp2']) {
      const res = await h.request('POST', '/v1/platforms', {
        name,
        target: { kind: 'cluster', name: 'cl' },
        source: { type: 'git', url: 'https://example.com/code.git', ref: 'v1' },
        profile: 'wordpress',
      });
      assert.equal(res.status, 201, JSON.stringify(res.body));
    }
    for (const domain of ['a.example.com', 'b.example.com']) {
      const res = await h.request('POST', '/v1/sites', {
        domain,
        aliases: [`www.${domain}`],
        platform: 'wp',
        dbServer: 'db1',
      });
      assert.equal(res.status, 201, JSON.stringify(res.body));
    }
    const put = await h.request('PUT', '/v1/servers/web3', server('web3', { host: '10.0.0.33' }));
    assert.equal(put.status, 200);
    assert.equal(put.headers.get('sitefleet-change'), 'updated');
    const same = await h.request('PUT', '/v1/servers/web3', server('web3', { host: '10.0.0.33' }));
    assert.equal(same.headers.get('sitefleet-change'), 'unchanged');

    const listed = await h.request('GET', '/v1/servers');
    assert.deepEqual(
      listed.body.servers.map((s: { name: string }) => s.name),
      ['db1', 'nfs1', 'web1', 'web2', 'web3'],
    );
    assert.deepEqual((await h.request('GET', '/v1/packs/pk')).body, await h.store.get('pack', 'pk'));
    // What the API wrote is in PostgreSQL: documents, key columns and member rows.
    assert.deepEqual(await rows("SELECT doc->>'host' AS host FROM servers WHERE name = 'web3'"), [
      { host: '10.0.0.33' },
    ]);
    assert.deepEqual(await rows('SELECT cluster, server FROM cluster_members ORDER BY server'), [
      { cluster: 'cl', server: 'web2' },
      { cluster: 'cl', server: 'web3' },
    ]);
    assert.deepEqual(
      (await rows('SELECT host FROM site_hosts ORDER BY host')).map((r) => r.host),
      ['a.example.com', 'b.example.com', 'www.a.example.com', 'www.b.example.com'],
    );
  });

  void test('refused input leaves the inventory unchanged', async () => {
    const before = await h.store.dump();
    const refusals: [string, string, unknown, number][] = [
      ['POST', '/v1/servers', { name: 'Bad Name', host: '10.0.0.1', ssh: { hostKey: 'x' } }, 400],
      ['POST', '/v1/servers', server('web1'), 409],
      ['POST', '/v1/packs', { name: 'p2', master: 'ghost', share: { server: 'nfs1', clients: '10.0.0.0/24' } }, 404],
      ['POST', '/v1/clusters', { name: 'pk', members: ['web1'] }, 400],
      ['POST', '/v1/clusters', { name: 'c2', members: ['db1'] }, 400],
      [
        'POST',
        '/v1/sites',
        { domain: 'c.example.com', aliases: ['www.a.example.com'], platform: 'wp', dbServer: 'db1' },
        400,
      ],
      ['POST', '/v1/sites', { domain: 'c.example.com', platform: 'wp' }, 400],
      ['PUT', '/v1/servers/web2', server('web2', { http: undefined }), 409],
      ['PUT', '/v1/sites/a.example.com', { domain: 'a.example.com', platform: 'wp2', dbServer: 'db1' }, 409],
      [
        'PUT',
        '/v1/platforms/wp',
        {
          name: 'wp',
          target: { kind: 'pack', name: 'pk' },
          source: { type: 'path', path: '/x' },
          profile: 'wordpress',
        },
        409,
      ],
      ['DELETE', '/v1/servers/web2', undefined, 409],
      ['DELETE', '/v1/servers/db1', undefined, 409],
      ['DELETE', '/v1/clusters/cl', undefined, 409],
      ['DELETE', '/v1/servers/ghost', undefined, 404],
      ['POST', '/v1/sites/ghost.example.com/install', undefined, 404],
    ];
    for (const [method, path, body, status] of refusals) {
      const res = await h.request(method, path, body);
      assert.equal(res.status, status, `${method} ${path}: ${JSON.stringify(res.body)}`);
    }
    const inUse = await h.request('DELETE', '/v1/servers/web2');
    assert.deepEqual(inUse.body.usedBy, [
      { kind: 'pack', key: 'pk', role: 'slave' },
      { kind: 'cluster', key: 'cl', role: 'member' },
    ]);
    assert.deepEqual(await h.store.dump(), before);
  });

  void test('starts operations, records them, and applies their effect when they complete', async () => {
    const started = await h.request('POST', '/v1/sites/a.example.com/install');
    assert.equal(started.status, 202, JSON.stringify(started.body));
    assert.equal(started.body.operationId, 'site/a.example.com');
    const recorded = await h.store.getOperation('site/a.example.com', started.body.runId);
    assert.equal(recorded?.status, 'RUNNING');
    assert.equal(recorded?.type, 'InstallSiteOnCluster');
    // A second operation on the same site while the first runs is refused.
    assert.equal((await h.request('POST', '/v1/sites/a.example.com/disable')).status, 409);
    assert.equal((await untilClosed(h, 'site/a.example.com')).status, 'COMPLETED');
    assert.equal((await h.store.getOperation('site/a.example.com'))?.status, 'COMPLETED');

    assert.equal((await h.request('POST', '/v1/sites/b.example.com/disable')).status, 202);
    assert.equal((await untilClosed(h, 'site/b.example.com')).status, 'COMPLETED');
    assert.equal((await h.store.get('site', 'b.example.com'))?.status, 'disabled');
    assert.deepEqual(await rows("SELECT status FROM sites WHERE domain = 'b.example.com'"), [{ status: 'disabled' }]);

    assert.equal((await h.request('POST', '/v1/sites/b.example.com/migrate', { platform: 'wp2' })).status, 202);
    assert.equal((await untilClosed(h, 'site/b.example.com')).status, 'COMPLETED');
    assert.equal((await h.store.get('site', 'b.example.com'))?.platform, 'wp2');

    assert.equal((await h.request('DELETE', '/v1/sites/b.example.com')).status, 202);
    assert.equal((await untilClosed(h, 'site/b.example.com')).status, 'COMPLETED');
    assert.equal((await h.request('GET', '/v1/sites/b.example.com')).status, 404);
    assert.deepEqual(await rows("SELECT host FROM site_hosts WHERE site = 'b.example.com'"), []);

    // The background refresh applies effects of operations nobody watched.
    assert.equal((await h.request('POST', '/v1/clusters/cl/members', { server: 'web1' })).status, 202);
    await h.env.client.workflow.getHandle('cluster/cl').result();
    assert.equal(await h.api.operations.refreshRunning(), 1);
    assert.deepEqual((await h.store.get('cluster', 'cl'))?.members, ['web2', 'web3', 'web1']);
    assert.equal(await h.api.operations.refreshRunning(), 0);

    const listed = await h.request('GET', '/v1/operations?resource=site/b.example.com');
    assert.equal(listed.status, 200);
    assert.deepEqual(
      listed.body.operations.map((o: { type: string; status: string }) => `${o.type} ${o.status}`),
      ['DeleteSite COMPLETED', 'MigrateSite COMPLETED', 'DisableSite COMPLETED'],
    );
  });
});
