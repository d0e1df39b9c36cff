/**
 * Transfer options (parallel rsync or relay; docs/relay.md) through the API: stored with a pack or cluster,
 * validated field by field, shown in the OpenAPI document, and passed into the deployment's workflow input —
 * the group's own, overridden field by field by an optional body of the deploy request.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { useHarnessWithServers } from './harness';

void describe('transfer options through the API', () => {
  const harness = useHarnessWithServers(['web1', 'web2', 'web3', 'web4']);

  const platform = (name: string, kind: 'pack' | 'cluster', target: string) => ({
    name,
    target: { kind, name: target },
    source: { type: 'git', url: 'https://example.com/code.git', ref: 'v1' },
    profile: 'wordpress',
  });

  /** Starts a deployment and returns the input its workflow was started with, then ends the workflow. */
  async function deployedInput(name: string, body?: unknown): Promise<Record<string, unknown>> {
    const res = await harness().request('POST', `/v1/platforms/${name}/deploy`, body);
    assert.equal(res.status, 202, JSON.stringify(res.body));
    const handle = harness().env.client.workflow.getHandle(res.body.operationId, res.body.runId);
    const history = await handle.fetchHistory();
    const payload = history.events?.[0]?.workflowExecutionStartedEventAttributes?.input?.payloads?.[0]?.data;
    assert.ok(payload);
    await handle.terminate('test: input read');
    return JSON.parse(Buffer.from(payload).toString('utf8')) as Record<string, unknown>;
  }

  void test('stores transfer options with a cluster and a pack; GET and the lists return them', async () => {
    const transfer = { mode: 'auto', uplinkMbit: 200, memberLinkMbit: 1000, minMembers: 3, compress: true };
    const created = await harness().request('POST', '/v1/clusters', {
      name: 'cl',
      members: ['web1', 'web2', 'web3'],
      transfer,
    });
    assert.equal(created.status, 201, JSON.stringify(created.body));
    assert.deepEqual(created.body.transfer, transfer);
    assert.deepEqual((await harness().request('GET', '/v1/clusters/cl')).body.transfer, transfer);

    const pack = {
      name: 'pk',
      master: 'web4',
      share: { server: 'web4', clients: '10.0.0.0/24', clientFlavour: 'sshfs' },
      transfer: { mode: 'relay', compress: false },
    };
    assert.equal((await harness().request('PUT', '/v1/packs/pk', pack)).status, 201);
    const list = await harness().request('GET', '/v1/packs');
    assert.deepEqual(
      list.body.packs.map((p: { name: string; transfer?: unknown }) => [p.name, p.transfer]),
      [['pk', { mode: 'relay', compress: false }]],
    );

    const changed = { ...transfer, uplinkMbit: 100, minBytes: 1_000_000 };
    const put = await harness().request('PUT', '/v1/clusters/cl', {
      name: 'cl',
      members: ['web1', 'web2', 'web3'],
      transfer: changed,
    });
    assert.equal(put.status, 200);
    assert.equal(put.headers.get('sitefleet-change'), 'updated');
    assert.deepEqual((await harness().request('GET', '/v1/clusters/cl')).body.transfer, changed);
  });

  void test('refuses bad transfer options with 400 naming the field and the rule, and stores nothing', async () => {
    assert.equal((await harness().request('POST', '/v1/platforms', platform('oncl', 'cluster', 'cl'))).status, 201);
    const before = await harness().store.dump();
    const workflowsBefore = await harness().workflowIds();
    const newCluster = (transfer: unknown) => ({ name: 'c2', members: ['web1'], transfer });
    const cluster = (transfer: unknown) => ({ name: 'cl', members: ['web1'], transfer });
    const pack = (transfer: unknown) => ({
      name: 'pk',
      master: 'web4',
      share: { server: 'web4', clients: '10.0.0.0/24' },
      transfer,
    });
    const deploy = '/v1/platforms/oncl/deploy';
    const cases: [string, string, unknown, string, RegExp][] = [
      ['POST', '/v1/clusters', newCluster({ uplinkMbit: -5 }), 'transfer.uplinkMbit', /positive/],
      ['POST', '/v1/clusters', newCluster({ mode: 'fast' }), 'transfer.mode', /"auto", "rsync" or "relay"/],
      ['PUT', '/v1/clusters/cl', cluster({ minMembers: 1 }), 'transfer.minMembers', /at least 2/],
      ['PUT', '/v1/clusters/cl', cluster({ uplinkMbit: 2e8 }), 'transfer.uplinkMbit', /not bit\/s/],
      ['PUT', '/v1/clusters/cl', cluster({ minBytes: 1.5 }), 'transfer.minBytes', /whole number/],
      ['PUT', '/v1/packs/pk', pack({ compress: 'no' }), 'transfer.compress', /true or false/],
      ['PUT', '/v1/packs/pk', pack({ uplink: 10 }), 'transfer', /Unrecognized key/],
      ['POST', deploy, { transfer: { uplinkMbit: -5 } }, 'transfer.uplinkMbit', /positive/],
      ['POST', deploy, { transfer: { mode: 'fast' } }, 'transfer.mode', /"auto", "rsync" or "relay"/],
      ['POST', deploy, { mode: 'relay' }, '(body)', /Unrecognized key/],
    ];
    for (const [method, path, body, field, rule] of cases) {
      const res = await harness().request(method, path, body);
      assert.equal(res.status, 400, `${method} ${path} ${JSON.stringify(body)}: ${JSON.stringify(res.body)}`);
      const problem = res.body.fields?.find((f: { field: string }) => f.field === field);
      assert.ok(problem, `${method} ${path}: no problem named ${field} in ${JSON.stringify(res.body)}`);
      assert.match(problem.rule, rule);
    }
    assert.deepEqual(await harness().store.dump(), before);
    assert.deepEqual(await harness().workflowIds(), workflowsBefore);
  });

  void test("deploying passes the group's stored transfer options in the workflow input", async () => {
    const clusterInput = await deployedInput('oncl');
    assert.equal(clusterInput.group && (clusterInput.group as { kind: string }).kind, 'cluster');
    assert.deepEqual(clusterInput.transfer, (await harness().request('GET', '/v1/clusters/cl')).body.transfer);

    assert.equal((await harness().request('POST', '/v1/platforms', platform('onpk', 'pack', 'pk'))).status, 201);
    assert.deepEqual((await deployedInput('onpk')).transfer, { mode: 'relay', compress: false });

    // A group without options: the input carries none, as before (parallel rsync).
    assert.equal(
      (await harness().request('POST', '/v1/clusters', { name: 'plain', members: ['web1', 'web2'] })).status,
      201,
    );
    assert.equal(
      (await harness().request('POST', '/v1/platforms', platform('onplain', 'cluster', 'plain'))).status,
      201,
    );
    assert.equal('transfer' in (await deployedInput('onplain')), false);
    assert.equal('transfer' in (await deployedInput('onplain', {})), false);
  });

  void test("a deploy request's body overrides the group's options field by field, for that operation only", async () => {
    const stored = (await harness().request('GET', '/v1/clusters/cl')).body.transfer;
    const input = await deployedInput('oncl', { transfer: { mode: 'relay', compress: false } });
    assert.deepEqual(input.transfer, { ...stored, mode: 'relay', compress: false });
    assert.deepEqual(
      (await harness().request('GET', '/v1/clusters/cl')).body.transfer,
      stored,
      'the stored options stay',
    );
    assert.deepEqual((await deployedInput('onplain', { transfer: { uplinkMbit: 50 } })).transfer, { uplinkMbit: 50 });
    assert.deepEqual((await deployedInput('oncl')).transfer, stored);
  });

  void test('the OpenAPI document shows the transfer options and the optional deploy body', async () => {
    const doc = (await harness().request('GET', '/v1/openapi.json')).body;
    for (const name of ['Cluster', 'ClusterInput', 'Pack', 'PackInput']) {
      const transfer = doc.components.schemas[name].properties.transfer;
      assert.deepEqual(Object.keys(transfer.properties).sort(), [
        'compress',
        'memberLinkMbit',
        'minBytes',
        'minMembers',
        'mode',
        'uplinkMbit',
      ]);
      assert.equal(transfer.additionalProperties, false);
      assert.deepEqual(transfer.properties.mode.enum, ['auto', 'rsync', 'relay']);
      assert.equal(transfer.properties.uplinkMbit.exclusiveMinimum, 0);
      assert.equal(transfer.properties.minMembers.minimum, 2);
    }
    const deploy = doc.paths['/v1/platforms/{name}/deploy'].post.requestBody;
    assert.equal(deploy.required, false);
    assert.equal(deploy.content['application/json'].schema.$ref, '#/components/schemas/DeployRequest');
    assert.ok(doc.components.schemas.DeployRequest.properties.transfer.properties.uplinkMbit);
  });
});
