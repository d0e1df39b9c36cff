/**
 * The production topology (`npm run stack`, devserver/stack.ts) on test hosts: Temporal server v1.29.1 on
 * PostgreSQL as three processes, two compiled sitefleet workers, API and codec; WordPress on a 3-node cluster while
 * a worker is SIGKILLed and while every Temporal server process restarts; encrypted payloads in PostgreSQL; the
 * search attributes on PostgreSQL visibility.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { Client, Connection, type WorkflowHandle } from '@temporalio/client';
import { Client as PgClient } from 'pg';
import { temporal } from '@temporalio/proto';
import { serverInventorySchema, type Platform, type Server, type Site } from '../../domain/model';
import { workflowIds } from '../../domain/operations';
import { sitefleetDataConverter } from '../../codec/data-converter';
import type { PlatformResult } from '../../workflows/platform';
import type { InstallSiteResult } from '../../workflows/site';
import { ensureTemporalServer } from '../../devserver/temporal-server';
import { stackDown, stackUp, startStackWorker, startTemporalProcess } from '../../devserver/stack';
import { stackAddresses, type StackState } from '../../devserver/stack-state';
import { TEMPORAL_PROCESSES } from '../../devserver/stack-temporal';
import { temporalAnswers } from '../../devserver/dev-server';
import type { Bed } from '../../testbed';
import { readFileSync } from 'node:fs';
import { clusterGroup } from '../support/fleet';
import { startTestBed, stopTestBed } from '../support/testbed';
import { wordpressPlatform, wordpressSite } from '../support/wordpress';
import { freePort, sleep } from '../support/reliability';

const MEMBERS = ['h1', 'h2', 'h3'];
const platform: Platform = wordpressPlatform;
const siteA: Site = wordpressSite('stack-a.example.com');
const siteB: Site = wordpressSite('stack-b.example.com');

let dir: string;
let stack: StackState;
let bed: Bed;
let connection: Connection;
let client: Client;
let servers: Map<string, Server>;

/** A base port whose 14 ports are free, below 32768 (Temporal keeps membership ports in a smallint). */
async function freeBasePort(): Promise<number> {
  for (let attempt = 0; attempt < 50; attempt++) {
    const base = 20_000 + Math.floor(Math.random() * 800) * 15;
    const ports = await Promise.all(
      Array.from({ length: 14 }, async (_, i) => {
        const { createServer } = await import('node:net');
        return new Promise<boolean>((resolve) => {
          const s = createServer();
          s.once('error', () => resolve(false));
          s.listen(base + i, '127.0.0.1', () => s.close(() => resolve(true)));
        });
      }),
    );
    if (ports.every(Boolean)) return base;
  }
  return freePort();
}

function killGroup(pid: number | undefined, signal: NodeJS.Signals): void {
  if (!pid) return;
  try {
    process.kill(-pid, signal);
  } catch {
    // gone
  }
}

const pidAlive = (pid: number | undefined): boolean => {
  if (!pid) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

/** Waits until the workflow has a started activity of `type` (raw describe: payloads stay encrypted). */
async function waitForStarted(handle: WorkflowHandle, type: string, timeoutMs = 240_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const { raw, status } = await handle.describe();
    if (status.name !== 'RUNNING')
      throw new Error(`${handle.workflowId} closed (${status.name}) before ${type} started`);
    if ((raw.pendingActivities ?? []).some((p) => p.activityType?.name === type && Number(p.state) === 2)) return;
    await sleep(100);
  }
  throw new Error(`${type} never started in ${handle.workflowId}`);
}

const group = () =>
  clusterGroup(
    'c1',
    MEMBERS.map((n) => servers.get(n)!),
  );
const start = (type: string, id: string, input: unknown) =>
  client.workflow.start(type, { taskQueue: stack.taskQueue, workflowId: id, args: [input] });

describe('the production topology: Temporal on PostgreSQL, two workers', () => {
  before(async () => {
    await ensureTemporalServer();
    dir = mkdtempSync(join(tmpdir(), 'sitefleet-stack-'));
    const [b, s] = await Promise.all([
      startTestBed({
        hosts: [{ roles: ['web-nginx'] }, { roles: ['web-nginx'] }, { roles: ['web-nginx'] }, { roles: ['db'] }],
      }),
      stackUp({ dir, basePort: await freeBasePort(), workers: 2, log: () => undefined }),
    ]);
    bed = b;
    stack = s;
    const inventory = serverInventorySchema.parse(JSON.parse(readFileSync(bed.paths.inventoryFile, 'utf8')));
    servers = new Map(inventory.servers.map((srv) => [srv.name, srv]));
    connection = await Connection.connect({ address: stackAddresses(stack).temporal });
    const dataConverter = sitefleetDataConverter({ codecKeyFile: join(dir, 'secrets', 'codec-keys') });
    client = new Client({ connection, namespace: stack.namespace, ...(dataConverter ? { dataConverter } : {}) });
  });
  after(async () => {
    await connection?.close();
    if (dir) await stackDown(dir, () => undefined);
    if (bed) await stopTestBed(bed);
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  test('WordPress on a 3-node cluster; one worker SIGKILLed mid-fan-out, the other finishes', async (t) => {
    const platformRun = await start('CreatePlatformOnCluster', workflowIds.platform('wp'), {
      platform,
      group: group(),
    });
    await waitForStarted(platformRun, 'syncPlatform');
    // SIGKILL to worker 1's process group (the worker and the rsyncs it started), as a crash would.
    killGroup(stack.pids['worker-1'], 'SIGKILL');
    const killedAt = Date.now();
    const synced = (await platformRun.result()) as PlatformResult;
    t.diagnostic(`platform completed ${Date.now() - killedAt} ms after the kill, by worker 2 alone`);
    assert.deepEqual(synced.synced.map((s) => s.server).sort(), MEMBERS);
    assert.ok(!pidAlive(stack.pids['worker-1']), 'worker 1 stayed dead');

    const installed = (await (
      await start('InstallSiteOnCluster', workflowIds.site(siteA.domain), {
        site: siteA,
        platform,
        group: group(),
        dbServer: servers.get('h4'),
      })
    ).result()) as InstallSiteResult;
    assert.deepEqual(
      installed.members.map((m) => `${m.server}:${m.status}`),
      MEMBERS.map((m) => `${m}:200`),
    );
    for (const host of MEMBERS) {
      const rest = await bed.httpGet(host, '/?rest_route=/', { headers: { Host: siteA.domain } });
      assert.equal((JSON.parse(rest.body) as { name: string }).name, siteA.domain, `${host} serves the site`);
    }
    startStackWorker(stack, 1);
  });

  test('every Temporal server process restarted mid-operation: the operation completes', async (t) => {
    const handle = await start('InstallSiteOnCluster', workflowIds.site(siteB.domain), {
      site: siteB,
      platform,
      group: group(),
      dbServer: servers.get('h4'),
    });
    await waitForStarted(handle, 'runSiteInstaller');
    const { server } = await ensureTemporalServer(() => undefined);
    const stoppedAt = Date.now();
    for (const proc of TEMPORAL_PROCESSES) {
      const pid = stack.pids[proc.name];
      killGroup(pid, 'SIGTERM');
      while (pidAlive(pid)) await sleep(100);
    }
    assert.equal(await temporalAnswers(stackAddresses(stack).temporal), false, 'the frontend is down');
    for (const proc of TEMPORAL_PROCESSES) startTemporalProcess(stack, server, proc.name);
    const result = (await handle.result()) as InstallSiteResult;
    t.diagnostic(`completed ${Date.now() - stoppedAt} ms after the server processes were stopped`);
    assert.deepEqual(
      result.members.map((m) => `${m.server}:${m.status}`),
      MEMBERS.map((m) => `${m}:200`),
    );
  });

  test('payloads in PostgreSQL are encrypted: no site name in clear in any payload of the history table', async () => {
    const pg = new PgClient({ connectionString: stackAddresses(stack).temporalDbUrl });
    await pg.connect();
    try {
      const rows = (await pg.query('SELECT data, data_encoding FROM history_node')).rows as {
        data: Buffer;
        data_encoding: string;
      }[];
      assert.ok(rows.length > 20, `history rows present (${rows.length})`);
      assert.deepEqual([...new Set(rows.map((r) => r.data_encoding))], ['Proto3']);
      // Each row is a batch of history events as the server stores them; walk every Payload in it.
      const payloads: { path: string; payload: temporal.api.common.v1.IPayload }[] = [];
      const walk = (value: unknown, path: string): void => {
        if (!value || typeof value !== 'object' || Buffer.isBuffer(value) || value instanceof Uint8Array) return;
        if (Array.isArray(value)) return value.forEach((v, i) => walk(v, `${path}[${i}]`));
        const record = value as Record<string, unknown>;
        if ('metadata' in record && 'data' in record) payloads.push({ path, payload: record });
        for (const [k, v] of Object.entries(record)) walk(v, `${path}.${k}`);
      };
      for (const row of rows) {
        const history = temporal.api.history.v1.History.toObject(temporal.api.history.v1.History.decode(row.data));
        walk(history, 'history');
      }
      // Search attributes are indexed by the server and by design never encoded: leave them out.
      const encodable = payloads.filter((p) => !/\.(searchAttributes|indexedFields)\b/.test(p.path));
      assert.ok(encodable.length > 20, `payloads found (${encodable.length})`);
      const notEncrypted = encodable.filter(
        (p) => Buffer.from(p.payload.metadata?.encoding ?? []).toString() !== 'binary/encrypted',
      );
      assert.deepEqual(
        notEncrypted.map((p) => `${p.path}: ${Buffer.from(p.payload.metadata?.encoding ?? []).toString()}`),
        [],
      );
      for (const domain of [siteA.domain, siteB.domain]) {
        const clear = encodable.filter((p) => Buffer.from(p.payload.data ?? []).includes(domain));
        assert.deepEqual(
          clear.map((p) => p.path),
          [],
          `${domain} in clear in no payload`,
        );
      }
      // Positive control: the same history, read through the client with the codec, names the site.
      const history = await client.workflow.getHandle(workflowIds.site(siteA.domain)).fetchHistory();
      const started = history.events?.[0]?.workflowExecutionStartedEventAttributes?.input?.payloads?.[0];
      assert.ok(started, 'the started event has an input');
      const decoded = await client.options.loadedDataConverter.payloadCodecs[0]!.decode([started]);
      assert.ok(Buffer.from(decoded[0]?.data ?? []).includes(siteA.domain), 'decoded input names the site');
    } finally {
      await pg.end();
    }
  });

  test('the search attributes work on PostgreSQL visibility: list by SitefleetSite', async () => {
    const query = `SitefleetSite = "${siteB.domain}"`;
    let ids: string[] = [];
    for (let i = 0; i < 100 && ids.length === 0; i++) {
      ids = [];
      for await (const w of client.workflow.list({ query })) ids.push(w.workflowId);
      if (ids.length === 0) await sleep(200);
    }
    assert.ok(ids.includes(workflowIds.site(siteB.domain)), `${query} lists ${ids.join(', ')}`);
    assert.ok(!ids.includes(workflowIds.site(siteA.domain)), 'and not the other site');
  });
});
