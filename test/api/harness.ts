/**
 * Real parts for API and CLI tests: a Temporal dev server, an inventory in a temporary data dir, and the API
 * listening on an ephemeral loopback port with a freshly generated token.
 * The inventory is the SQLite file unless SITEFLEET_TEST_INVENTORY=postgres (or `inventory: 'postgres'`): then it
 * is a fresh database on a real PostgreSQL server (test/support/postgres.ts), opened as the API opens it.
 */
import assert from 'node:assert/strict';
import { after, before } from 'node:test';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { mkdtempSync, rmSync } from 'node:fs';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadSettings, type Settings } from '../../config/settings';
import { openInventoryStore } from '../../inventory/open-store';
import type { InventoryStore } from '../../inventory/store';
import { createApi, type Api } from '../../api/app';
import { loadOrCreateToken } from '../../api/auth';
import { defaultBaseDir } from '../../testbed/plan';
import { startTestPostgres, type TestPostgres } from '../support/postgres';
import { startTestTemporal } from '../support/temporal';

export interface Harness {
  env: TestWorkflowEnvironment;
  settings: Settings;
  store: InventoryStore;
  /** The inventory backend in use. */
  inventory: InventoryBackend;
  api: Api;
  url: string;
  token: string;
  dataDir: string;
  /** JSON request with the token (override with `token: null` or another string). */
  request(
    method: string,
    path: string,
    body?: unknown,
    opts?: { token?: string | null; headers?: Record<string, string>; raw?: string },
    // eslint-disable-next-line @typescript-eslint/no-explicit-any -- tests read arbitrary JSON answers
  ): Promise<{ status: number; body: any; headers: Headers }>;
  /** `id@runId` of every workflow execution Temporal knows, once visibility has settled. */
  workflowIds(): Promise<string[]>;
  close(): Promise<void>;
}

export type InventoryBackend = 'sqlite' | 'postgres';

/** The backend the API tests use: SITEFLEET_TEST_INVENTORY=sqlite (default) or postgres. */
export function testInventoryBackend(env: NodeJS.ProcessEnv = process.env): InventoryBackend {
  const chosen = env.SITEFLEET_TEST_INVENTORY || 'sqlite';
  if (chosen !== 'sqlite' && chosen !== 'postgres') {
    throw new Error(`SITEFLEET_TEST_INVENTORY=${chosen}: must be sqlite or postgres`);
  }
  return chosen;
}

export async function startHarness(
  opts: { env?: TestWorkflowEnvironment; inventory?: InventoryBackend } = {},
): Promise<Harness> {
  const inventory = opts.inventory ?? testInventoryBackend();
  // Started first: when PostgreSQL cannot start, nothing else is left behind.
  const postgres: TestPostgres | undefined = inventory === 'postgres' ? await startTestPostgres() : undefined;
  const env = opts.env ?? (await startTestTemporal());
  const dataDir = mkdtempSync(join(tmpdir(), 'sitefleet-api-test-'));
  const settings = loadSettings({
    SITEFLEET_DATA_DIR: dataDir,
    TEMPORAL_NAMESPACE: env.namespace ?? 'default',
    SITEFLEET_UI_URL: 'http://127.0.0.1:8233',
    // The bodies of the API tests name /root/.ssh keys; bed inventories name the bed's client key.
    SITEFLEET_SSH_KEY_DIRS: ['/root/.ssh', defaultBaseDir(), join(dataDir, 'ssh-keys')].join(':'),
    ...(postgres ? { SITEFLEET_INVENTORY_URL: await postgres.createDatabase() } : {}),
  });
  const store = await openInventoryStore(settings);
  const { token } = loadOrCreateToken(settings.tokenFile);
  const api = createApi({ store, client: env.client, settings, token });
  const server = await new Promise<Server>((resolve) => {
    const s = api.app.listen(0, '127.0.0.1', () => resolve(s));
  });
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;

  const request: Harness['request'] = async (method, path, body, o = {}) => {
    const headers: Record<string, string> = { ...(o.headers ?? {}) };
    const auth = o.token === undefined ? token : o.token;
    if (auth !== null) headers.authorization = `Bearer ${auth}`;
    let payload: string | undefined = o.raw;
    if (body !== undefined) {
      payload = JSON.stringify(body);
    }
    if (payload !== undefined && !headers['content-type']) headers['content-type'] = 'application/json';
    const res = await fetch(url + path, { method, headers, ...(payload !== undefined ? { body: payload } : {}) });
    const text = await res.text();
    let parsed: unknown = text;
    try {
      parsed = text ? JSON.parse(text) : undefined;
    } catch {
      // not JSON
    }
    return { status: res.status, body: parsed, headers: res.headers };
  };

  const listOnce = async () => {
    const ids: string[] = [];
    for await (const wf of env.client.workflow.list()) ids.push(`${wf.workflowId}@${wf.runId}`);
    return ids.sort().join('\n');
  };
  // Visibility is eventually consistent: wait until two listings a moment apart agree.
  const workflowIds = async () => {
    let previous = await listOnce();
    for (let i = 0; i < 20; i++) {
      await new Promise((resolve) => setTimeout(resolve, 250));
      const current = await listOnce();
      if (current === previous) return current ? current.split('\n') : [];
      previous = current;
    }
    throw new Error('workflow visibility did not settle');
  };

  return {
    env,
    settings,
    store,
    inventory,
    api,
    url,
    token,
    dataDir,
    request,
    workflowIds,
    async close() {
      await new Promise<void>((resolve) => server.close(() => resolve()));
      server.closeAllConnections();
      await store.close();
      if (!opts.env) await env.teardown();
      await postgres?.stop();
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

/** A valid fingerprint for servers whose key the test gives explicitly. */
export const FAKE_KEY = `SHA256:${'A'.repeat(43)}`;

export function server(name: string, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    name,
    host: `10.0.0.${(name.length * 7) % 250 || 1}`,
    ssh: { hostKey: FAKE_KEY },
    http: { type: 'nginx' },
    ...extra,
  };
}

/**
 * A worker running the stand-in workflows of ./stub-workflows on the API's task queue, for tests that need
 * operations to progress and close.
 */
export async function startStubWorker(h: Harness): Promise<{ stop(): Promise<void> }> {
  const { Worker } = await import('@temporalio/worker');
  const worker = await Worker.create({
    connection: h.env.nativeConnection,
    namespace: h.settings.namespace,
    taskQueue: h.settings.taskQueue,
    workflowsPath: require.resolve('./stub-workflows'),
  });
  const running = worker.run();
  return {
    async stop() {
      worker.shutdown();
      await running;
    },
  };
}

/**
 * The usual set-up of a suite: a harness started before its tests with `names` registered as servers, closed
 * after them. Returns a getter (the harness exists only once `before` has run).
 */
export function useHarnessWithServers(names: readonly string[]): () => Harness {
  let h: Harness | undefined;
  before(async () => {
    h = await startHarness();
    for (const name of names) {
      assert.equal((await h.request('POST', '/v1/servers', server(name))).status, 201, `server ${name} registered`);
    }
  });
  after(async () => {
    await h?.close();
  });
  return () => {
    if (!h) throw new Error('the harness is not started yet (use it inside a test)');
    return h;
  };
}
