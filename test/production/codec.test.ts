import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync, rmSync, existsSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import express from 'express';
import { defaultPayloadConverter, type Payload } from '@temporalio/common';
import { AesGcmCodec, ENCRYPTED_ENCODING, KEY_ID_METADATA } from '../../codec/aes-gcm-codec';
import { generateCodecKeyLine, loadCodecKeys, parseCodecKeys } from '../../codec/codec-keys';
import { createCodecHandler, startCodecServer, type RunningCodecServer } from '../../codec/codec-server';
import { sitefleetDataConverter } from '../../codec/data-converter';
import { corsOriginsOf, uiOrigins } from '../../codec/main';
import { loadSettings } from '../../config/settings';

const SECRET = 'db-password: Tr0ub4dor&3-horse-battery';
const text = (bytes: Uint8Array | null | undefined): string => Buffer.from(bytes ?? []).toString('utf8');

function ring(...ids: string[]) {
  return parseCodecKeys(ids.map((id) => generateCodecKeyLine(id)).join('\n'), 'test keys');
}

function payloadOf(value: unknown): Payload {
  return defaultPayloadConverter.toPayload(value);
}

void describe('AES-GCM payload codec', () => {
  const keys = ring('2025-06', '2025-01');
  const codec = new AesGcmCodec(keys);

  void test('encrypts with the current key and decodes back to the same payload', async () => {
    const original = payloadOf({ password: SECRET });
    const [encrypted] = await codec.encode([original]);
    assert.equal(text(encrypted!.metadata!.encoding), ENCRYPTED_ENCODING);
    assert.equal(text(encrypted!.metadata![KEY_ID_METADATA]), '2025-06');
    assert.ok(!Buffer.from(encrypted!.data!).includes(SECRET), 'ciphertext does not contain the secret');
    const [decoded] = await codec.decode([encrypted!]);
    assert.equal(text(decoded!.metadata!.encoding), 'json/plain');
    assert.deepEqual(defaultPayloadConverter.fromPayload(decoded!), { password: SECRET });
  });

  void test('uses a fresh IV for every payload', async () => {
    const [a, b] = await codec.encode([payloadOf(SECRET), payloadOf(SECRET)]);
    assert.notDeepEqual(Buffer.from(a!.data!), Buffer.from(b!.data!));
  });

  void test('rejects a payload whose ciphertext was altered', async () => {
    const [encrypted] = await codec.encode([payloadOf(SECRET)]);
    const data = Buffer.from(encrypted!.data!);
    data[20] = data[20]! ^ 0x01;
    await assert.rejects(codec.decode([{ ...encrypted!, data }]), /failed authentication/);
  });

  void test('rejects a payload relabelled with another known key id', async () => {
    const [encrypted] = await codec.encode([payloadOf(SECRET)]);
    const relabelled = {
      ...encrypted!,
      metadata: { ...encrypted!.metadata, [KEY_ID_METADATA]: Buffer.from('2025-01') },
    };
    await assert.rejects(codec.decode([relabelled]), /failed authentication/);
  });

  void test('rejects a payload encrypted with a key id it does not know', async () => {
    const [foreign] = await new AesGcmCodec(ring('lost-key')).encode([payloadOf(SECRET)]);
    await assert.rejects(codec.decode([foreign!]), /key id "lost-key", which is not in the key ring/);
  });

  void test('after a rotation, decodes payloads written with the previous key and encrypts with the new one', async () => {
    const oldLine = generateCodecKeyLine('old');
    const newLine = generateCodecKeyLine('new');
    const before = new AesGcmCodec(parseCodecKeys(oldLine, 'before'));
    const after = new AesGcmCodec(parseCodecKeys(`${newLine}\n${oldLine}\n`, 'after'));
    const [written] = await before.encode([payloadOf(SECRET)]);
    const [read] = await after.decode([written!]);
    assert.equal(defaultPayloadConverter.fromPayload(read!), SECRET);
    const [fresh] = await after.encode([payloadOf(SECRET)]);
    assert.equal(text(fresh!.metadata![KEY_ID_METADATA]), 'new');
  });

  void test('passes payloads that were never encrypted through decode unchanged', async () => {
    const plain = payloadOf({ site: 'example.com' });
    const [out] = await codec.decode([plain]);
    assert.equal(out, plain);
  });
});

void describe('codec keys', () => {
  const dir = mkdtempSync(join(tmpdir(), 'sitefleet-codec-keys-'));
  after(() => rmSync(dir, { recursive: true, force: true }));

  void test('reads a key file with comments and blank lines; the first key is current', () => {
    const file = join(dir, 'keys');
    writeFileSync(file, `# rotated 2025-06\n\n${generateCodecKeyLine('b')}\n${generateCodecKeyLine('a')}\n`);
    const keys = loadCodecKeys({ codecKeyFile: file });
    assert.equal(keys?.current.id, 'b');
    assert.deepEqual([...keys!.byId.keys()], ['b', 'a']);
  });

  void test('reads one key from SITEFLEET_CODEC_KEY', () => {
    assert.equal(loadCodecKeys({ codecKey: generateCodecKeyLine('env-key') })?.current.id, 'env-key');
  });

  void test('refuses keys that are not 32 bytes, duplicate ids, bad ids, empty files and two sources', () => {
    const short = `k:${Buffer.alloc(16).toString('base64')}`;
    assert.throws(() => parseCodecKeys(short, 'f'), /f line 1: key "k" decodes to 16 bytes; AES-256 needs 32/);
    const line = generateCodecKeyLine('same');
    assert.throws(() => parseCodecKeys(`${line}\n${line}`, 'f'), /"same" appears twice/);
    assert.throws(() => parseCodecKeys(`bad id:${Buffer.alloc(32).toString('base64')}`, 'f'), /key id "bad id"/);
    assert.throws(() => parseCodecKeys('# nothing\n', 'f'), /no key found/);
    assert.throws(() => parseCodecKeys('k:not base64!', 'f'), /not base64/);
    assert.throws(() => loadCodecKeys({ codecKeyFile: join(dir, 'x'), codecKey: line }), /set only one of them/);
  });

  void test('names the file it cannot read', () => {
    const missing = join(dir, 'missing');
    assert.throws(
      () => loadCodecKeys({ codecKeyFile: missing }),
      new RegExp(`SITEFLEET_CODEC_KEY_FILE=${missing} cannot be read`),
    );
  });

  void test('sitefleetDataConverter stays plain without a key and encrypts with one', () => {
    assert.equal(sitefleetDataConverter({}), undefined);
    const converter = sitefleetDataConverter({ codecKey: generateCodecKeyLine('k1') });
    assert.equal(converter?.payloadCodecs?.length, 1);
    assert.ok(converter?.failureConverterPath && existsSync(converter.failureConverterPath));
  });

  void test('the codec endpoint allows the Web UI origin by default, under both local names', () => {
    assert.deepEqual(uiOrigins('http://127.0.0.1:8233/'), ['http://127.0.0.1:8233', 'http://localhost:8233']);
    assert.deepEqual(uiOrigins('https://temporal.example.net'), ['https://temporal.example.net']);
    const settings = loadSettings({ SITEFLEET_CODEC_CORS_ORIGINS: 'https://a.example, https://b.example' });
    assert.deepEqual(corsOriginsOf(settings), ['https://a.example', 'https://b.example']);
    const defaults = loadSettings({ SITEFLEET_UI_URL: 'http://localhost:8233' });
    assert.deepEqual(corsOriginsOf(defaults), ['http://localhost:8233', 'http://127.0.0.1:8233']);
    assert.throws(() => loadSettings({ SITEFLEET_CODEC_PORT: '99999' }), /SITEFLEET_CODEC_PORT=99999/);
  });
});

function toJson(payload: Payload): { metadata: Record<string, string>; data: string } {
  const metadata: Record<string, string> = {};
  for (const [k, v] of Object.entries(payload.metadata ?? {})) metadata[k] = Buffer.from(v!).toString('base64');
  return { metadata, data: Buffer.from(payload.data ?? []).toString('base64') };
}

const UI_ORIGIN = 'http://localhost:8233';
const TOKEN = 'codec-test-token';

void describe('codec HTTP endpoint', () => {
  const codec = new AesGcmCodec(ring('http-key'));
  let server: RunningCodecServer;
  before(async () => {
    server = await startCodecServer({ codec, port: 0, corsOrigins: [UI_ORIGIN], token: TOKEN });
  });
  after(async () => {
    await server?.close();
  });

  async function post(path: string, body: unknown, headers: Record<string, string> = {}): Promise<Response> {
    return fetch(`${server.url}${path}`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json', Authorization: `Bearer ${TOKEN}`, ...headers },
      body: JSON.stringify(body),
    });
  }

  void test('encodes and decodes payloads in the JSON form the Web UI sends', async () => {
    const enc = await post('/encode', { payloads: [toJson(payloadOf({ password: SECRET }))] });
    assert.equal(enc.status, 200);
    const encoded = (await enc.json()) as { payloads: { metadata: Record<string, string>; data: string }[] };
    assert.equal(Buffer.from(encoded.payloads[0]!.metadata.encoding!, 'base64').toString(), ENCRYPTED_ENCODING);
    assert.ok(!Buffer.from(encoded.payloads[0]!.data, 'base64').includes(SECRET));

    const dec = await post('/decode', encoded, { 'X-Namespace': 'default', Origin: UI_ORIGIN });
    assert.equal(dec.status, 200);
    assert.equal(dec.headers.get('access-control-allow-origin'), UI_ORIGIN);
    const decoded = (await dec.json()) as { payloads: { metadata: Record<string, string>; data: string }[] };
    assert.deepEqual(JSON.parse(Buffer.from(decoded.payloads[0]!.data, 'base64').toString()), { password: SECRET });
  });

  void test('answers the browser preflight for the UI origin with the headers the UI sends', async () => {
    const res = await fetch(`${server.url}/decode`, {
      method: 'OPTIONS',
      headers: {
        Origin: UI_ORIGIN,
        'Access-Control-Request-Method': 'POST',
        'Access-Control-Request-Headers': 'content-type,x-namespace',
      },
    });
    assert.equal(res.status, 204);
    assert.equal(res.headers.get('access-control-allow-origin'), UI_ORIGIN);
    assert.equal(res.headers.get('access-control-allow-credentials'), 'true');
    const allowed = (res.headers.get('access-control-allow-headers') ?? '').toLowerCase();
    for (const h of ['content-type', 'x-namespace', 'authorization']) assert.ok(allowed.includes(h), `${h} allowed`);
    assert.match(res.headers.get('access-control-allow-methods') ?? '', /POST/);
  });

  void test('refuses other origins, a missing token, bad bodies and payloads of unknown keys', async () => {
    const foreign = await post('/decode', { payloads: [] }, { Origin: 'https://evil.example' });
    assert.equal(foreign.status, 403);
    const anonymous = await fetch(`${server.url}/decode`, { method: 'POST', body: '{"payloads":[]}' });
    assert.equal(anonymous.status, 401);
    assert.match(anonymous.headers.get('www-authenticate') ?? '', /Bearer/);
    assert.equal((await post('/decode', { nope: 1 })).status, 400);
    const [alien] = await new AesGcmCodec(ring('other')).encode([payloadOf(SECRET)]);
    const unknown = await post('/decode', { payloads: [toJson(alien!)] });
    assert.equal(unknown.status, 422);
    assert.match(((await unknown.json()) as { error: string }).error, /key id "other"/);
    assert.equal((await fetch(`${server.url}/healthz`)).status, 200);
  });

  void test('mounts in an express app behind express.json()', async () => {
    const app = express();
    app.use(express.json());
    app.use('/codec', createCodecHandler({ codec }));
    app.get('/other', (_req, res) => {
      res.send('other route');
    });
    const listener = app.listen(0, '127.0.0.1');
    await new Promise((resolve) => listener.once('listening', resolve));
    try {
      const base = `http://127.0.0.1:${(listener.address() as AddressInfo).port}`;
      const [encrypted] = await codec.encode([payloadOf(SECRET)]);
      const res = await fetch(`${base}/codec/decode`, {
        method: 'POST',
        headers: { 'Content-Type': 'application/json' },
        body: JSON.stringify({ payloads: [toJson(encrypted!)] }),
      });
      assert.equal(res.status, 200);
      const body = (await res.json()) as { payloads: { data: string }[] };
      assert.equal(JSON.parse(Buffer.from(body.payloads[0]!.data, 'base64').toString()), SECRET);
      const other = await fetch(`${base}/other`, { headers: { Origin: 'https://elsewhere.example' } });
      assert.equal(await other.text(), 'other route', "the app's other routes are untouched, whatever the origin");
    } finally {
      await new Promise((resolve) => listener.close(resolve));
    }
  });
});
