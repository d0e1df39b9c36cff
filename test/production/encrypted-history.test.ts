import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { after, before, describe, test } from 'node:test';
import { Client, WorkflowFailedError } from '@temporalio/client';
import { ApplicationFailure, type DataConverter } from '@temporalio/common';
import { temporal } from '@temporalio/proto';
import { TestWorkflowEnvironment } from '@temporalio/testing';
import { DefaultLogger, Runtime, Worker } from '@temporalio/worker';
import { ENCRYPTED_ENCODING, KEY_ID_METADATA } from '../../codec/aes-gcm-codec';
import { generateCodecKeyLine, loadCodecKeys } from '../../codec/codec-keys';
import { AesGcmCodec } from '../../codec/aes-gcm-codec';
import { startCodecServer, type RunningCodecServer } from '../../codec/codec-server';
import { sitefleetDataConverter } from '../../codec/data-converter';
import { ensureTemporalCli } from '../../devserver/temporal-cli';
import { buildWorkflowBundle } from '../../workers/bundle';
import * as activities from './activities';

type History = temporal.api.history.v1.IHistory;
type Payload = temporal.api.common.v1.IPayload;

const run = promisify(execFile);
const text = (bytes: Uint8Array | null | undefined): string => Buffer.from(bytes ?? []).toString('utf8');

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise((resolve) => server.close(resolve));
  return port;
}

/** Chromium, when installed (CI installs it for the browser tests). */
async function chromium(): Promise<string | undefined> {
  return run('chromium', ['--version']).then(
    () => 'chromium',
    () => undefined,
  );
}

/** Every payload in a history, with the path it was found at; search attributes are skipped (never encrypted). */
function payloadsIn(value: unknown, path = 'history', out: { path: string; payload: Payload }[] = []) {
  if (value === null || typeof value !== 'object' || ArrayBuffer.isView(value)) return out;
  const candidate = value as Payload;
  if (candidate.metadata && typeof candidate.metadata === 'object' && 'data' in candidate) {
    out.push({ path, payload: candidate });
    return out;
  }
  for (const [key, child] of Object.entries(value)) {
    if (key === 'searchAttributes') continue;
    payloadsIn(child, `${path}.${key}`, out);
  }
  return out;
}

/** Every failure in a history (nested causes included). */
function failuresIn(value: unknown, out: temporal.api.failure.v1.IFailure[] = []) {
  if (value === null || typeof value !== 'object' || ArrayBuffer.isView(value)) return out;
  for (const [key, child] of Object.entries(value)) {
    if ((key === 'failure' || key === 'lastFailure' || key === 'cause') && child && typeof child === 'object') {
      out.push(child as temporal.api.failure.v1.IFailure);
    }
    failuresIn(child, out);
  }
  return out;
}

void describe('payloads and failure messages are encrypted in the stored history', () => {
  const dir = mkdtempSync(join(tmpdir(), 'sitefleet-encrypted-history-'));
  const secret = `S3cret-db-pass-${randomUUID()}`;
  const keyFile = join(dir, 'codec-keys');
  let dataConverter: DataConverter;
  let env: TestWorkflowEnvironment;
  let codecServer: RunningCodecServer;
  let uiUrl: string;
  let workflowId: string;
  let outcome: unknown;
  let rawHistory: History;
  let controlHistory: History;

  before(async () => {
    // The SDK logs activity and workflow failures (secret included: see docs/production.md); keep test output short.
    Runtime.install({ logger: new DefaultLogger('ERROR') });
    // A rotated key ring: new payloads use "current", "previous" is there only to read old ones.
    writeFileSync(keyFile, `${generateCodecKeyLine('current')}\n${generateCodecKeyLine('previous')}\n`, {
      mode: 0o600,
    });
    dataConverter = sitefleetDataConverter({ codecKeyFile: keyFile })!;
    // The dev server's Web UI reads payloads through the codec endpoint, as TEMPORAL_CODEC_ENDPOINT does in compose.
    const uiPort = await freePort();
    uiUrl = `http://127.0.0.1:${uiPort}`;
    codecServer = await startCodecServer({
      codec: new AesGcmCodec(loadCodecKeys({ codecKeyFile: keyFile })!),
      port: 0,
      corsOrigins: [uiUrl],
    });
    const path = await ensureTemporalCli();
    env = await TestWorkflowEnvironment.createLocal({
      client: { dataConverter },
      server: {
        executable: { type: 'existing-path', path },
        ui: true,
        uiPort,
        extraArgs: ['--log-level', 'error', '--ui-codec-endpoint', codecServer.url],
      },
    });

    // The worker runs a prebuilt bundle, as in production, built for this data converter.
    const bundle = await buildWorkflowBundle({
      workflowsPath: require.resolve('./workflows'),
      converter: dataConverter,
      outDir: join(dir, 'dist'),
      logger: new DefaultLogger('WARN'),
    });
    const taskQueue = `encrypted-${randomUUID()}`;
    const worker = await Worker.create({
      connection: env.nativeConnection,
      namespace: env.namespace ?? 'default',
      taskQueue,
      workflowBundle: { codePath: bundle.codePath },
      activities,
      dataConverter,
    });
    workflowId = `secret-round-trip-${randomUUID()}`;
    outcome = await worker.runUntil(
      env.client.workflow
        .execute('SecretRoundTrip', { taskQueue, workflowId, args: [secret], workflowExecutionTimeout: '60s' })
        .catch((err: unknown) => err),
    );
    const plainClient = new Client({ connection: env.connection, namespace: env.namespace ?? 'default' });
    rawHistory = await plainClient.workflow.getHandle(workflowId).fetchHistory();

    // Control: the same workflow without the codec, so the checks below are known to see a secret when it is there.
    const controlQueue = `plain-${randomUUID()}`;
    const plainWorker = await Worker.create({
      connection: env.nativeConnection,
      namespace: env.namespace ?? 'default',
      taskQueue: controlQueue,
      workflowBundle: {
        codePath: (
          await buildWorkflowBundle({
            workflowsPath: require.resolve('./workflows'),
            outDir: join(dir, 'dist'),
            logger: new DefaultLogger('WARN'),
          })
        ).codePath,
      },
      activities,
    });
    const controlId = `plain-round-trip-${randomUUID()}`;
    await plainWorker.runUntil(
      plainClient.workflow
        .execute('SecretRoundTrip', { taskQueue: controlQueue, workflowId: controlId, args: [secret] })
        .catch(() => undefined),
    );
    controlHistory = await plainClient.workflow.getHandle(controlId).fetchHistory();
  });

  after(async () => {
    await codecServer?.close();
    await env?.teardown();
    rmSync(dir, { recursive: true, force: true });
  });

  void test('a client with the codec reads the workflow failure message in clear', () => {
    assert.ok(outcome instanceof WorkflowFailedError, `workflow failed (got ${String(outcome)})`);
    const cause = outcome.cause;
    assert.ok(cause instanceof ApplicationFailure);
    assert.equal(cause.message, `the site rejected the password ${secret}`);
    assert.deepEqual(cause.details, [{ session: `session opened with ${secret}` }]);
  });

  void test('without the codec (control run) the secret is in the stored payloads and failure messages', () => {
    const bytes = Buffer.from(temporal.api.history.v1.History.encode(controlHistory).finish());
    assert.ok(bytes.includes(secret));
    assert.ok(failuresIn(controlHistory).some((f) => f.message === `the site rejected the password ${secret}`));
    assert.ok(payloadsIn(controlHistory).every(({ payload }) => text(payload.metadata?.encoding) === 'json/plain'));
  });

  void test('the stored history holds the secret nowhere, in payloads or failure messages', () => {
    const bytes = Buffer.from(temporal.api.history.v1.History.encode(rawHistory).finish());
    assert.ok(!bytes.includes(secret), 'secret absent from the whole encoded history');
    assert.ok(!bytes.includes(secret.slice(0, 16)), 'not even a prefix of the secret is stored');

    const failures = failuresIn(rawHistory);
    assert.ok(
      failures.length >= 2,
      `history has the activity's and the workflow's failures (found ${failures.length})`,
    );
    for (const failure of failures) {
      assert.equal(failure.message, 'Encoded failure', 'failure message replaced by the encoded attributes');
      assert.ok(!failure.stackTrace, 'no stack trace in clear');
      assert.equal(text(failure.encodedAttributes?.metadata?.encoding), ENCRYPTED_ENCODING);
    }
  });

  void test('every payload in the history is encrypted with the current key', () => {
    const found = payloadsIn(rawHistory);
    // input, activity input, activity result, two encoded failures (+ the failure details)
    assert.ok(found.length >= 5, `found ${found.length} payloads`);
    for (const { path, payload } of found) {
      assert.equal(text(payload.metadata?.encoding), ENCRYPTED_ENCODING, `${path} is encrypted`);
      assert.equal(text(payload.metadata?.[KEY_ID_METADATA]), 'current', `${path} names its key`);
    }
  });

  void test('the codec HTTP endpoint decodes the stored payloads back to the secret', async () => {
    const found = payloadsIn(rawHistory);
    const res = await fetch(`${codecServer.url}/decode`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json', 'X-Namespace': 'default', Origin: uiUrl },
      body: JSON.stringify({
        payloads: found.map(({ payload }) => ({
          metadata: Object.fromEntries(
            Object.entries(payload.metadata ?? {}).map(([k, v]) => [k, Buffer.from(v).toString('base64')]),
          ),
          data: Buffer.from(payload.data ?? []).toString('base64'),
        })),
      }),
    });
    assert.equal(res.status, 200);
    assert.equal(res.headers.get('access-control-allow-origin'), uiUrl);
    const decoded = ((await res.json()) as { payloads: { metadata: Record<string, string>; data: string }[] }).payloads;
    const plain = decoded.map((p) => Buffer.from(p.data, 'base64').toString('utf8'));
    assert.ok(plain.includes(JSON.stringify(secret)), 'the workflow input decodes to the secret');
    assert.ok(plain.includes(JSON.stringify(`session opened with ${secret}`)), 'the activity result decodes');
    const failureTexts = plain
      .filter((p) => p.includes('"stack_trace"'))
      .map((p) => JSON.parse(p) as { message: string });
    assert.ok(
      failureTexts.some((f) => f.message === `first login with password ${secret} was refused`),
      "the retried activity's failure message decodes",
    );
    assert.ok(
      failureTexts.some((f) => f.message === `the site rejected the password ${secret}`),
      "the workflow's failure message decodes",
    );
  });

  void test('the Web UI shows the workflow input decrypted through the codec endpoint', async (t) => {
    const browser = await chromium();
    if (!browser) {
      t.skip('chromium is not installed');
      return;
    }
    const profile = mkdtempSync(join(tmpdir(), 'sitefleet-ui-profile-'));
    try {
      const page = `${uiUrl}/namespaces/${env.namespace ?? 'default'}/workflows/${encodeURIComponent(workflowId)}`;
      // The UI is a single-page app that renders after its API calls; dump again if a dump came too early.
      let dom = '';
      for (let attempt = 1; attempt <= 4 && !(dom.includes('SecretRoundTrip') && dom.includes(secret)); attempt++) {
        const args = ['--headless', '--no-sandbox', '--disable-gpu', `--user-data-dir=${profile}`];
        args.push('--virtual-time-budget=20000', '--dump-dom', page);
        dom = (await run(browser, args, { encoding: 'utf8', maxBuffer: 64 * 1024 * 1024, timeout: 90_000 })).stdout;
      }
      assert.ok(dom.includes('SecretRoundTrip'), 'the workflow page rendered');
      assert.ok(dom.includes(secret), 'the UI decoded the encrypted input through the codec endpoint');
    } finally {
      rmSync(profile, { recursive: true, force: true });
    }
  });
});
