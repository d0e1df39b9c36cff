import assert from 'node:assert/strict';
import { statSync } from 'node:fs';
import { after, before, describe, test } from 'node:test';
import { ScheduleNotFoundError } from '@temporalio/client';
import { loadOrCreateToken } from '../../api/auth';
import { DOCUMENTED_ROUTES } from '../../api/openapi';
import { FAKE_KEY, server, startHarness, type Harness } from './harness';

void describe('sitefleet API', () => {
  let h: Harness;

  before(async () => {
    h = await startHarness();
    // web1..web3 with nginx, db1 with mariadb, nfs1 with an NFS server; a pack, a cluster, platforms, sites.
    for (const name of ['web1', 'web2', 'web3'])
      assert.equal((await h.request('POST', '/v1/servers', server(name))).status, 201);
    const lb = server('lb1', { http: undefined, lb: { type: 'haproxy' } });
    assert.equal((await h.request('POST', '/v1/servers', lb)).status, 201);
    assert.equal(
      (await h.request('POST', '/v1/servers', server('db1', { http: undefined, db: { type: 'mariadb' } }))).status,
      201,
    );
    assert.equal(
      (await h.request('POST', '/v1/servers', server('nfs1', { http: undefined, nfs: { flavour: 'ganesha' } }))).status,
      201,
    );
    assert.equal(
      (
        await h.request('POST', '/v1/packs', {
          name: 'pk',
          master: 'web1',
          slaves: ['web2'],
          share: { server: 'nfs1', clients: '10.0.0.0/24' },
        })
      ).status,
      201,
    );
    assert.equal(
      (await h.request('POST', '/v1/clusters', { name: 'cl', members: ['web2', 'web3'], loadBalancer: 'lb1' })).status,
      201,
    );
    for (const [name, kind, target] of [
      ['onpack', 'pack', 'pk'],
      ['oncluster', 'cluster', 'cl'],
      ['onserver', 'server', 'web1'],
    ]) {
      const res = await h.request('POST', '/v1/platforms', {
        name,
        target: { kind, name: target },
        source: { type: 'git', url: 'https://example.com/code.git', ref: 'v1' },
        profile: 'wordpress',
      });
      assert.equal(res.status, 201, JSON.stringify(res.body));
    }
    for (const [domain, platform] of [
      ['pack.example.com', 'onpack'],
      ['cluster.example.com', 'oncluster'],
      ['single.example.com', 'onserver'],
    ]) {
      assert.equal((await h.request('POST', '/v1/sites', { domain, platform, dbServer: 'db1' })).status, 201);
    }
  });
  after(async () => {
    await h?.close();
  });

  void test('answers the health check without a token and every other route only with the right token', async () => {
    const health = await h.request('GET', '/v1/health', undefined, { token: null });
    assert.equal(health.status, 200);
    assert.deepEqual(health.body, { status: 'ok', inventory: 'ok', temporal: 'ok' });
    const before = await h.store.dump();
    const workflowsBefore = await h.workflowIds();
    const routes: [string, string, unknown?][] = [
      ['GET', '/v1/servers'],
      ['POST', '/v1/servers', server('intruder')],
      ['PUT', '/v1/servers/web1', server('web1', { host: '10.6.6.6' })],
      ['DELETE', '/v1/servers/lb1'],
      ['GET', '/v1/openapi.json'],
      ['POST', '/v1/sites/cluster.example.com/install'],
      ['GET', '/v1/operations/site/cluster.example.com'],
      ['POST', '/v1/schedules', { action: 'resync', target: { kind: 'cluster', name: 'cl' }, every: '1h' }],
      ['GET', '/v1/nonexistent'],
    ];
    for (const [method, path, body] of routes) {
      for (const opts of [
        { token: null },
        { token: 'wrong' },
        { token: `${h.token}x` },
        { token: null, headers: { authorization: `Basic ${Buffer.from(`x:${h.token}`).toString('base64')}` } },
        { token: null, headers: { authorization: `Bearer ${h.token} extra` } },
      ]) {
        const res = await h.request(method, path, body, opts);
        assert.equal(res.status, 401, `${method} ${path} with ${JSON.stringify(opts)}`);
        assert.match(res.body.error, /token/);
        assert.equal(res.headers.get('www-authenticate'), 'Bearer realm="sitefleet"');
      }
    }
    assert.deepEqual(await h.store.dump(), before);
    assert.deepEqual(await h.workflowIds(), workflowsBefore);
  });

  void test('keeps the generated token in a file only its owner can read, and reuses it', () => {
    assert.equal(statSync(h.settings.tokenFile).mode & 0o777, 0o600);
    const again = loadOrCreateToken(h.settings.tokenFile);
    assert.deepEqual(again, { token: h.token, created: false });
    assert.ok(h.token.length >= 40);
  });

  void test('creates, lists, shows, replaces and removes servers, packs, clusters, platforms and sites', async () => {
    const s = await h.request('POST', '/v1/servers', server('tmp1', { ssh: { hostKey: FAKE_KEY, port: 2222 } }));
    assert.equal(s.status, 201);
    assert.equal(s.headers.get('location'), '/v1/servers/tmp1');
    assert.deepEqual(s.body.ssh, { user: 'root', port: 2222, hostKey: FAKE_KEY });
    assert.equal((await h.request('POST', '/v1/servers', server('tmp1'))).status, 409);
    assert.deepEqual((await h.request('GET', '/v1/servers/tmp1')).body, s.body);
    assert.ok((await h.request('GET', '/v1/servers')).body.servers.some((x: { name: string }) => x.name === 'tmp1'));

    const unchanged = await h.request('PUT', '/v1/servers/tmp1', s.body);
    assert.equal(unchanged.status, 200);
    assert.equal(unchanged.headers.get('sitefleet-change'), 'unchanged');
    // Without a host key and with the same host and port, the pinned key is kept.
    const { hostKey: _k, ...sshWithoutKey } = s.body.ssh;
    const kept = await h.request('PUT', '/v1/servers/tmp1', {
      ...s.body,
      ssh: sshWithoutKey,
      address: 'tmp1.internal',
    });
    assert.equal(kept.status, 200);
    assert.equal(kept.headers.get('sitefleet-change'), 'updated');
    assert.equal(kept.body.ssh.hostKey, FAKE_KEY);
    const created = await h.request('PUT', '/v1/servers/tmp2', server('tmp2'));
    assert.equal(created.status, 201);
    assert.equal(created.headers.get('sitefleet-change'), 'created');
    const mismatch = await h.request('PUT', '/v1/servers/tmp2', server('tmp3'));
    assert.equal(mismatch.status, 400);
    assert.deepEqual(mismatch.body.fields, [{ field: 'name', rule: 'must be "tmp2", the name in the URL' }]);

    const pack = await h.request('POST', '/v1/packs', {
      name: 'pk2',
      master: 'tmp1',
      share: { server: 'tmp1', clients: '10.1.0.0/16', clientFlavour: 'sshfs' },
    });
    assert.equal(pack.status, 201);
    assert.deepEqual(pack.body.slaves, []);
    const packUpdated = await h.request('PUT', '/v1/packs/pk2', { ...pack.body, slaves: ['tmp2'] });
    assert.equal(packUpdated.status, 200);
    assert.deepEqual((await h.request('GET', '/v1/packs/pk2')).body.slaves, ['tmp2']);
    const cluster = await h.request('POST', '/v1/clusters', {
      name: 'cl2',
      members: ['tmp1', 'tmp2'],
      files: 'pin-to-one',
    });
    assert.equal(cluster.status, 201);
    const platform = await h.request('POST', '/v1/platforms', {
      name: 'static1',
      target: { kind: 'cluster', name: 'cl2' },
      source: { type: 'tarball', url: 'https://example.com/site.tar.gz' },
      profile: 'static',
    });
    assert.equal(platform.status, 201);
    const site = await h.request('POST', '/v1/sites', {
      domain: 'static.example.com',
      aliases: ['www.static.example.com'],
      platform: 'static1',
      https: true,
    });
    assert.equal(site.status, 201);
    assert.equal(site.body.status, 'enabled');
    const disabled = await h.request('PUT', '/v1/sites/static.example.com', { ...site.body, status: 'disabled' });
    assert.equal(disabled.status, 200);
    for (const [plural, key] of [
      ['packs', 'pk2'],
      ['clusters', 'cl2'],
      ['platforms', 'static1'],
      ['sites', 'static.example.com'],
    ]) {
      const list = await h.request('GET', `/v1/${plural}`);
      assert.equal(list.status, 200);
      assert.ok(list.body[plural!].length > 0);
      assert.equal((await h.request('GET', `/v1/${plural}/${key}`)).status, 200);
    }

    // Removal order matters: what is used cannot go first.
    assert.equal((await h.request('DELETE', '/v1/sites/static.example.com?forget=true')).status, 204);
    assert.equal((await h.request('DELETE', '/v1/platforms/static1?forget=true')).status, 204);
    const inUse = await h.request('DELETE', '/v1/servers/tmp1');
    assert.equal(inUse.status, 409);
    assert.match(inUse.body.error, /server "tmp1" is still used by pack "pk2" \(master\)/);
    assert.deepEqual(
      inUse.body.usedBy.map((u: { kind: string; key: string; role: string }) => `${u.kind}/${u.key}/${u.role}`).sort(),
      ['cluster/cl2/member', 'pack/pk2/master', 'pack/pk2/share'],
    );
    for (const path of ['/v1/packs/pk2', '/v1/clusters/cl2', '/v1/servers/tmp1', '/v1/servers/tmp2']) {
      assert.equal((await h.request('DELETE', path)).status, 204, path);
    }
    assert.equal((await h.request('GET', '/v1/servers/tmp1')).status, 404);
    assert.equal((await h.request('DELETE', '/v1/servers/tmp1')).status, 404);
  });

  void test('refuses to forget a platform that still has sites', async () => {
    const res = await h.request('DELETE', '/v1/platforms/oncluster?forget=true');
    assert.equal(res.status, 409);
    assert.match(res.body.error, /still used by site "cluster.example.com"/);
  });

  void test("refuses to roll back a platform that is not on a cluster (only a cluster's members have releases)", async () => {
    const res = await h.request('POST', '/v1/platforms/onserver/rollback');
    assert.equal(res.status, 409);
    assert.match(res.body.error, /platform "onserver" is on server web1: only a cluster's platforms have releases/);
  });

  const members = { pk: ['web1', 'web2', 'nfs1'], cl: ['web2', 'web3', 'lb1'] };
  const operations: {
    method?: string;
    path: string;
    body?: unknown;
    id: string;
    type: string;
    attrs: Record<string, unknown>;
    summary: RegExp;
  }[] = [
    {
      path: '/v1/servers/web1/verify',
      id: 'server/web1',
      type: 'VerifyServer',
      attrs: { SitefleetServer: ['web1'] },
      summary: /^Verify server web1 \(10\./,
    },
    {
      path: '/v1/packs/pk/setup-share',
      id: 'pack/pk',
      type: 'SetupPackShare',
      attrs: { SitefleetCluster: 'pk', SitefleetServer: members.pk },
      summary: /NFS share of pack pk \(web1, web2\) from nfs1/,
    },
    {
      path: '/v1/packs/pk/verify',
      id: 'verify/pack/pk',
      type: 'VerifyClusterNodes',
      attrs: { SitefleetCluster: 'pk', SitefleetServer: members.pk },
      summary: /1 platform\(s\), 1 site\(s\)/,
    },
    {
      path: '/v1/packs/pk/resync',
      id: 'resync/pack/pk',
      type: 'ResyncCluster',
      attrs: { SitefleetCluster: 'pk', SitefleetServer: members.pk },
      summary: /Repair drift/,
    },
    {
      path: '/v1/clusters/cl/verify',
      id: 'verify/cluster/cl',
      type: 'VerifyClusterNodes',
      attrs: { SitefleetCluster: 'cl', SitefleetServer: members.cl },
      summary: /cluster cl \(web2, web3\)/,
    },
    {
      path: '/v1/clusters/cl/resync',
      id: 'resync/cluster/cl',
      type: 'ResyncCluster',
      attrs: { SitefleetCluster: 'cl', SitefleetServer: members.cl },
      summary: /Repair drift/,
    },
    {
      path: '/v1/clusters/cl/members',
      body: { server: 'web1' },
      id: 'cluster/cl',
      type: 'AddClusterMember',
      attrs: { SitefleetCluster: 'cl', SitefleetServer: [...members.cl, 'web1'] },
      summary: /Add member web1 to cluster cl/,
    },
    {
      method: 'DELETE',
      path: '/v1/clusters/cl/members/web3',
      id: 'cluster/cl',
      type: 'RemoveClusterMember',
      attrs: { SitefleetCluster: 'cl', SitefleetServer: members.cl },
      summary: /Remove member web3 from cluster cl/,
    },
    {
      path: '/v1/platforms/onserver/deploy',
      id: 'platform/onserver',
      type: 'CreatePlatform',
      attrs: { SitefleetPlatform: 'onserver', SitefleetServer: ['web1'] },
      summary: /Deploy platform onserver \(wordpress, git\) on server web1/,
    },
    {
      path: '/v1/platforms/onpack/deploy',
      id: 'platform/onpack',
      type: 'CreatePlatformOnPack',
      attrs: { SitefleetPlatform: 'onpack', SitefleetCluster: 'pk', SitefleetServer: members.pk },
      summary: /on pack pk/,
    },
    {
      path: '/v1/platforms/oncluster/deploy',
      id: 'platform/oncluster',
      type: 'CreatePlatformOnCluster',
      attrs: { SitefleetPlatform: 'oncluster', SitefleetCluster: 'cl', SitefleetServer: members.cl },
      summary: /on cluster cl/,
    },
    {
      path: '/v1/platforms/oncluster/rollback',
      id: 'platform/oncluster',
      type: 'RollbackPlatform',
      attrs: { SitefleetPlatform: 'oncluster', SitefleetCluster: 'cl', SitefleetServer: members.cl },
      summary: /Roll platform oncluster back to its previous release on cluster cl/,
    },
    {
      path: '/v1/sites/single.example.com/install',
      id: 'site/single.example.com',
      type: 'InstallSite',
      attrs: { SitefleetSite: 'single.example.com', SitefleetPlatform: 'onserver', SitefleetServer: ['web1', 'db1'] },
      summary: /database on db1/,
    },
    {
      path: '/v1/sites/pack.example.com/install',
      id: 'site/pack.example.com',
      type: 'InstallSiteOnPack',
      attrs: {
        SitefleetSite: 'pack.example.com',
        SitefleetPlatform: 'onpack',
        SitefleetCluster: 'pk',
        SitefleetServer: [...members.pk, 'db1'],
      },
      summary: /on pack pk/,
    },
    {
      path: '/v1/sites/cluster.example.com/install',
      id: 'site/cluster.example.com',
      type: 'InstallSiteOnCluster',
      attrs: {
        SitefleetSite: 'cluster.example.com',
        SitefleetPlatform: 'oncluster',
        SitefleetCluster: 'cl',
        SitefleetServer: [...members.cl, 'db1'],
      },
      summary: /on cluster cl/,
    },
    {
      path: '/v1/sites/cluster.example.com/enable',
      id: 'site/cluster.example.com',
      type: 'EnableSite',
      attrs: { SitefleetSite: 'cluster.example.com' },
      summary: /^Enable site/,
    },
    {
      path: '/v1/sites/cluster.example.com/disable',
      id: 'site/cluster.example.com',
      type: 'DisableSite',
      attrs: { SitefleetSite: 'cluster.example.com' },
      summary: /^Disable site/,
    },
    {
      path: '/v1/sites/cluster.example.com/backup',
      id: 'site/cluster.example.com',
      type: 'BackupSite',
      attrs: { SitefleetSite: 'cluster.example.com' },
      summary: /^Back up site/,
    },
    {
      path: '/v1/sites/cluster.example.com/restore',
      body: { backup: 'cluster.example.com-20261126.tar.gz' },
      id: 'site/cluster.example.com',
      type: 'RestoreSite',
      attrs: { SitefleetSite: 'cluster.example.com' },
      summary: /from backup cluster.example.com-20261126.tar.gz/,
    },
    {
      path: '/v1/sites/cluster.example.com/migrate',
      body: { platform: 'onpack' },
      id: 'site/cluster.example.com',
      type: 'MigrateSite',
      attrs: { SitefleetSite: 'cluster.example.com', SitefleetServer: [...members.cl, 'db1', 'web1', 'nfs1'] },
      summary: /from platform oncluster to onpack on pack pk/,
    },
    {
      path: '/v1/sites/cluster.example.com/delete',
      id: 'site/cluster.example.com',
      type: 'DeleteSite',
      attrs: { SitefleetSite: 'cluster.example.com' },
      summary: /^Delete site cluster.example.com from cluster cl/,
    },
    {
      method: 'DELETE',
      path: '/v1/sites/cluster.example.com',
      id: 'site/cluster.example.com',
      type: 'DeleteSite',
      attrs: { SitefleetSite: 'cluster.example.com' },
      summary: /with its database/,
    },
  ];

  void test('starts every operation as a workflow with its resource id, type, search attributes and summary', async () => {
    for (const op of operations) {
      const res = await h.request(op.method ?? 'POST', op.path, op.body);
      assert.equal(res.status, 202, `${op.path}: ${JSON.stringify(res.body)}`);
      assert.equal(res.body.operationId, op.id);
      assert.equal(res.body.workflowType, op.type);
      assert.equal(
        res.body.webUiUrl,
        `http://127.0.0.1:8233/namespaces/default/workflows/${encodeURIComponent(op.id)}/${res.body.runId}/history`,
      );
      const handle = h.env.client.workflow.getHandle(op.id, res.body.runId);
      const d = await handle.describe();
      assert.equal(d.type, op.type);
      assert.equal(d.taskQueue, h.settings.taskQueue);
      assert.equal(d.status.name, 'RUNNING');
      assert.match((await d.staticSummary()) ?? '', op.summary);
      const attrs = Object.fromEntries(d.typedSearchAttributes.getAll().map((p) => [p.key.name, p.value]));
      for (const [key, value] of Object.entries(op.attrs)) assert.deepEqual(attrs[key], value, `${op.path} ${key}`);
      const record = await h.store.getOperation(op.id, res.body.runId);
      assert.equal(record?.type, op.type);
      assert.equal(record?.status, 'RUNNING');
      // Free the resource for the next operation on it.
      await handle.terminate('test: next operation');
    }
  });

  void test('passes workflows their input resolved from the inventory', async () => {
    const res = await h.request('POST', '/v1/sites/pack.example.com/install');
    assert.equal(res.status, 202);
    const handle = h.env.client.workflow.getHandle(res.body.operationId, res.body.runId);
    const history = await handle.fetchHistory();
    const started = history.events?.[0]?.workflowExecutionStartedEventAttributes;
    const payload = started?.input?.payloads?.[0]?.data;
    assert.ok(payload);
    const input = JSON.parse(Buffer.from(payload).toString('utf8'));
    assert.equal(input.site.domain, 'pack.example.com');
    assert.equal(input.platform.name, 'onpack');
    assert.equal(input.dbServer.name, 'db1');
    assert.equal(input.group.kind, 'pack');
    assert.deepEqual(
      input.group.members.map((m: { name: string }) => m.name),
      ['web1', 'web2'],
    );
    assert.deepEqual(input.group.codeReceivers, ['web1']);
    assert.equal(input.group.share.server.name, 'nfs1');
    assert.equal(input.group.members[0].ssh.hostKey, FAKE_KEY);
    await handle.terminate('test done');
  });

  void test('refuses a second operation on a busy resource with 409 naming the running one, and starts nothing', async () => {
    const first = await h.request('POST', '/v1/sites/single.example.com/install');
    assert.equal(first.status, 202);
    const before = await h.workflowIds();
    for (const path of ['/v1/sites/single.example.com/install', '/v1/sites/single.example.com/disable']) {
      const second = await h.request('POST', path);
      assert.equal(second.status, 409);
      assert.match(
        second.body.error,
        /site\/single.example.com is busy: operation site\/single.example.com \(InstallSite, run /,
      );
      assert.equal(second.body.running.runId, first.body.runId);
      assert.equal(second.body.running.workflowType, 'InstallSite');
    }
    assert.deepEqual(await h.workflowIds(), before);
    // Another resource is not blocked.
    const other = await h.request('POST', '/v1/platforms/onserver/deploy');
    assert.equal(other.status, 202);
    await h.env.client.workflow.getHandle(other.body.operationId).terminate('test done');
    await h.env.client.workflow.getHandle(first.body.operationId).terminate('test done');
  });

  void test('refuses to delete a platform that has sites before starting anything', async () => {
    const before = await h.workflowIds();
    for (const [method, path] of [
      ['POST', '/v1/platforms/onpack/delete'],
      ['DELETE', '/v1/platforms/onpack'],
    ]) {
      const res = await h.request(method!, path!);
      assert.equal(res.status, 409);
      assert.match(res.body.error, /still has 1 site\(s\): pack.example.com/);
    }
    assert.deepEqual(await h.workflowIds(), before);
  });

  void test('reports a running operation, says that no worker polls, and lists operations', async () => {
    const started = await h.request('POST', '/v1/clusters/cl/verify');
    assert.equal(started.status, 202);
    for (const path of [
      '/v1/operations/verify/cluster/cl',
      '/v1/operations/verify%2Fcluster%2Fcl',
      `/v1/operations/verify/cluster/cl?runId=${started.body.runId}`,
    ]) {
      const res = await h.request('GET', path);
      assert.equal(res.status, 200, path);
      assert.equal(res.body.status, 'RUNNING');
      assert.equal(res.body.runId, started.body.runId);
      assert.equal(res.body.workflowType, 'VerifyClusterNodes');
      assert.equal(res.body.resource, 'cluster/cl');
      assert.match(res.body.summary, /Verify every node of cluster cl/);
      assert.match(res.body.progressError, /no worker is polling task queue "sitefleet"/);
    }
    const list = await h.request('GET', '/v1/operations?resource=cluster/cl&status=RUNNING');
    assert.equal(list.status, 200);
    assert.deepEqual(
      list.body.operations.map((o: { runId: string }) => o.runId),
      [started.body.runId],
    );
    const all = await h.request('GET', '/v1/operations?limit=500');
    assert.ok(all.body.operations.length >= operations.length);
    assert.ok(
      all.body.operations.every(
        (o: { status: string; runId: string }) => o.status !== 'RUNNING' || o.runId === started.body.runId,
      ),
    );

    const cancel = await h.request('POST', '/v1/operations/verify/cluster/cl/cancel');
    assert.equal(cancel.status, 202);
    await h.env.client.workflow.getHandle('verify/cluster/cl').terminate('test done');
    const closed = await h.request('GET', '/v1/operations/verify/cluster/cl');
    assert.equal(closed.body.status, 'TERMINATED');
    assert.equal(closed.body.failure, 'test done');
    assert.equal((await h.store.getOperation('verify/cluster/cl'))?.status, 'TERMINATED');

    assert.equal((await h.request('GET', '/v1/operations/site/nothing.example.com')).status, 404);
    assert.equal((await h.request('GET', '/v1/operations/..%2F..%2Fetc')).status, 400);
    assert.equal((await h.request('GET', '/v1/operations?status=bogus')).status, 400);
  });

  void test('creates, updates, pauses, unpauses and deletes resync and verify schedules', async () => {
    const create = await h.request('POST', '/v1/schedules', {
      action: 'resync',
      target: { kind: 'cluster', name: 'cl' },
      every: '1h',
    });
    assert.equal(create.status, 201, JSON.stringify(create.body));
    assert.equal(create.body.scheduleId, 'resync/cluster/cl');
    assert.equal(create.body.workflowType, 'ResyncCluster');
    assert.equal(create.body.every, '1h');
    assert.equal(create.body.paused, false);
    const handle = h.env.client.schedule.getHandle('resync/cluster/cl');
    let d = await handle.describe();
    assert.equal(d.action.type, 'startWorkflow');
    assert.equal(d.action.workflowId, 'resync/cluster/cl');
    assert.equal(d.action.taskQueue, h.settings.taskQueue);
    const typed = d.action.typedSearchAttributes;
    const pairs = Array.isArray(typed) ? typed : (typed?.getAll() ?? []);
    const attrs = Object.fromEntries(pairs.map((p) => [p.key.name, p.value]));
    assert.equal(attrs.SitefleetCluster, 'cl');

    const update = await h.request('POST', '/v1/schedules', {
      action: 'resync',
      target: { kind: 'cluster', name: 'cl' },
      every: '30m',
    });
    assert.equal(update.status, 200);
    assert.equal(update.body.every, '30m');
    const paused = await h.request('PATCH', '/v1/schedules/resync/cluster/cl', {
      paused: true,
      note: 'maintenance window',
    });
    assert.equal(paused.status, 200);
    assert.equal(paused.body.paused, true);
    assert.equal(paused.body.note, 'maintenance window');
    const unpaused = await h.request('PATCH', '/v1/schedules/resync/cluster/cl', { paused: false, every: '2h' });
    assert.deepEqual([unpaused.body.paused, unpaused.body.every], [false, '2h']);

    // The schedule's input follows the inventory: a new site on the cluster appears in it.
    const site = await h.request('POST', '/v1/sites', {
      domain: 'new.example.com',
      platform: 'oncluster',
      dbServer: 'db1',
    });
    assert.equal(site.status, 201);
    d = await handle.describe();
    const input = d.action.args?.[0] as { sites: { domain: string }[] };
    assert.deepEqual(input.sites.map((s) => s.domain).sort(), ['cluster.example.com', 'new.example.com']);

    const verify = await h.request('POST', '/v1/schedules', {
      action: 'verify',
      target: { kind: 'pack', name: 'pk' },
      every: '15m',
      paused: true,
    });
    assert.equal(verify.status, 201);
    assert.equal(verify.body.workflowType, 'VerifyClusterNodes');
    const list = await h.request('GET', '/v1/schedules');
    assert.deepEqual(
      list.body.schedules.map((s: { scheduleId: string }) => s.scheduleId),
      ['resync/cluster/cl', 'verify/pack/pk'],
    );
    assert.equal((await h.request('GET', '/v1/schedules/verify/pack/pk')).body.paused, true);

    assert.equal(
      (
        await h.request('POST', '/v1/schedules', {
          action: 'resync',
          target: { kind: 'cluster', name: 'ghost' },
          every: '1h',
        })
      ).status,
      404,
    );
    assert.equal(
      (
        await h.request('POST', '/v1/schedules', {
          action: 'resync',
          target: { kind: 'cluster', name: 'cl' },
          every: '10s',
        })
      ).status,
      400,
    );
    assert.equal((await h.request('PATCH', '/v1/schedules/resync/cluster/cl', { every: '1h', extra: 1 })).status, 400);

    for (const id of ['resync/cluster/cl', 'verify/pack/pk']) {
      assert.equal((await h.request('DELETE', `/v1/schedules/${id}`)).status, 204);
      assert.equal((await h.request('GET', `/v1/schedules/${id}`)).status, 404);
    }
    await assert.rejects(handle.describe(), ScheduleNotFoundError);
    assert.equal((await h.request('DELETE', '/v1/sites/new.example.com?forget=true')).status, 204);
  });

  void test('publishes an OpenAPI 3.1 document generated from the domain schemas that covers every route', async () => {
    const res = await h.request('GET', '/v1/openapi.json');
    assert.equal(res.status, 200);
    const doc = res.body;
    assert.equal(doc.openapi, '3.1.0');
    assert.equal(doc.components.schemas.Server.properties.name.pattern, '^[a-z0-9][a-z0-9_-]{0,62}$');
    assert.equal(doc.components.schemas.Server.additionalProperties, false);
    assert.deepEqual(doc.components.schemas.ServerRegistration.properties.ssh.required ?? [], []);
    assert.deepEqual(doc.components.schemas.Site.required.sort(), ['aliases', 'domain', 'https', 'platform', 'status']);
    assert.deepEqual(doc.paths['/v1/health'].get.security, []);
    assert.equal(
      doc.paths['/v1/sites'].post.requestBody.content['application/json'].schema.$ref,
      '#/components/schemas/SiteInput',
    );

    // Every route the app serves is documented, and nothing else.
    type Layer = { route?: { path: string; methods: Record<string, boolean> } };
    const stack = (h.api.app as unknown as { router: { stack: Layer[] } }).router.stack;
    const served = stack
      .filter((l) => l.route)
      .flatMap((l) =>
        Object.keys(l.route!.methods).map(
          (m) => `${m.toUpperCase()} ${l.route!.path.replace(/\*(\w+)/g, '{$1}').replace(/:(\w+)/g, '{$1}')}`,
        ),
      )
      .sort();
    assert.deepEqual(served, [...DOCUMENTED_ROUTES].sort());
  });
});
