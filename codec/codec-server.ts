/**
 * The codec HTTP endpoint: the Temporal Web UI (TEMPORAL_CODEC_ENDPOINT, or `temporal server start-dev
 * --ui-codec-endpoint URL`) and the `temporal` CLI (`--codec-endpoint URL`) send it encrypted payloads and show
 * what it returns, so an operator reads inputs and failures in clear while the server stores only ciphertext.
 *
 * Protocol (Temporal's remote codec protocol): POST .../encode or .../decode with `{"payloads": [...]}`, payloads in
 * protobuf JSON form (metadata values and data base64). Only the last path segment is checked, so the handler can
 * be mounted anywhere: `app.use('/codec', createCodecHandler(...))` in express, or `startCodecServer()` alone.
 *
 * Anyone who can call /decode reads every payload: publish it only where the UI's users are, and set a token when
 * anything else can reach it.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Payload, PayloadCodec } from '@temporalio/common';
import { messageOf } from '../common/error-message';

export interface CodecHandlerOptions {
  codec: PayloadCodec;
  /**
   * Browser origins allowed to call the endpoint: the Web UI's origin, for example `http://localhost:8233`.
   * `*` allows any origin. Requests without an Origin header (CLI, curl) are not affected.
   * @default []
   */
  corsOrigins?: string[];
  /** When set, every request must carry `Authorization: Bearer <token>` (CORS preflights excepted). */
  token?: string;
  /** @default 16 MiB */
  maxBodyBytes?: number;
}

export interface CodecServerOptions extends CodecHandlerOptions {
  /** @default '127.0.0.1' */
  host?: string;
  /** 0 picks a free port. @default 8888 */
  port?: number;
}

export interface RunningCodecServer {
  server: Server;
  /** Base URL to give the Web UI, for example `http://127.0.0.1:8888`. */
  url: string;
  close(): Promise<void>;
}

/** A node http / express request handler. Unknown paths go to `next` when there is one, else 404. */
export type CodecRequestHandler = (req: IncomingMessage, res: ServerResponse, next?: (err?: unknown) => void) => void;

interface JsonPayload {
  metadata?: Record<string, string>;
  data?: string;
}

class HttpError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

const ALLOWED_HEADERS = 'Content-Type, X-Namespace, Authorization';

function digest(value: string): Buffer {
  return createHash('sha256').update(value).digest();
}

function sendJson(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(text) });
  res.end(text);
}

function payloadFromJson(value: unknown, index: number): Payload {
  if (typeof value !== 'object' || value === null) throw new HttpError(400, `payloads[${index}] is not an object`);
  const { metadata, data } = value as { metadata?: unknown; data?: unknown };
  const out: Payload = { metadata: {} };
  if (metadata !== undefined && metadata !== null) {
    if (typeof metadata !== 'object') throw new HttpError(400, `payloads[${index}].metadata is not an object`);
    for (const [key, v] of Object.entries(metadata)) {
      if (typeof v !== 'string') throw new HttpError(400, `payloads[${index}].metadata.${key} is not a base64 string`);
      out.metadata![key] = Buffer.from(v, 'base64');
    }
  }
  if (data !== undefined && data !== null) {
    if (typeof data !== 'string') throw new HttpError(400, `payloads[${index}].data is not a base64 string`);
    out.data = Buffer.from(data, 'base64');
  }
  return out;
}

function payloadToJson(payload: Payload): JsonPayload {
  const metadata: Record<string, string> = {};
  for (const [key, value] of Object.entries(payload.metadata ?? {})) {
    if (value) metadata[key] = Buffer.from(value).toString('base64');
  }
  return { metadata, data: Buffer.from(payload.data ?? new Uint8Array()).toString('base64') };
}

function readBody(req: IncomingMessage, limit: number): Promise<unknown> {
  const parsed = (req as IncomingMessage & { body?: unknown }).body;
  if (parsed !== undefined && typeof parsed === 'object' && parsed !== null && !Buffer.isBuffer(parsed)) {
    return Promise.resolve(parsed); // an express body parser ran first
  }
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size > limit) {
        reject(new HttpError(413, `request body is larger than ${limit} bytes`));
        req.destroy();
        return;
      }
      chunks.push(chunk);
    });
    req.on('error', reject);
    req.on('end', () => {
      try {
        resolve(JSON.parse(Buffer.concat(chunks).toString('utf8')));
      } catch {
        reject(new HttpError(400, 'request body is not JSON'));
      }
    });
  });
}

function lastSegment(url: string | undefined): string {
  const path = (url ?? '/').split('?')[0] ?? '/';
  return path.replace(/\/+$/, '').split('/').pop() ?? '';
}

/** The codec endpoint as a request handler (node http or express). */
export function createCodecHandler(options: CodecHandlerOptions): CodecRequestHandler {
  const origins = new Set(options.corsOrigins ?? []);
  const tokenDigest = options.token ? digest(options.token) : undefined;
  const maxBodyBytes = options.maxBodyBytes ?? 16 * 1024 * 1024;

  function authorised(req: IncomingMessage): boolean {
    if (!tokenDigest) return true;
    const header = req.headers.authorization ?? '';
    const match = /^Bearer\s+(.+)$/i.exec(header);
    return match !== null && timingSafeEqual(digest(match[1]!.trim()), tokenDigest);
  }

  async function handle(req: IncomingMessage, res: ServerResponse, action: 'encode' | 'decode'): Promise<void> {
    if (req.method !== 'POST') throw new HttpError(405, `use POST for /${action}`);
    if (!authorised(req)) {
      res.setHeader('WWW-Authenticate', 'Bearer realm="sitefleet codec"');
      throw new HttpError(401, 'missing or wrong bearer token');
    }
    const body = await readBody(req, maxBodyBytes);
    const list = (body as { payloads?: unknown } | null)?.payloads;
    if (!Array.isArray(list)) throw new HttpError(400, 'expected {"payloads": [...]}');
    const payloads = list.map(payloadFromJson);
    let result: Payload[];
    try {
      result = action === 'encode' ? await options.codec.encode(payloads) : await options.codec.decode(payloads);
    } catch (err) {
      throw new HttpError(422, messageOf(err));
    }
    sendJson(res, 200, { payloads: result.map(payloadToJson) });
  }

  return (req, res, next) => {
    const segment = lastSegment(req.url);
    const codecPath = segment === 'encode' || segment === 'decode';
    if (req.method === 'GET' && segment === 'healthz') {
      sendJson(res, 200, { status: 'ok' });
      return;
    }
    if (!codecPath) {
      // Not ours: an express app's other routes are left alone.
      if (next) next();
      else sendJson(res, 404, { error: 'not found: POST /encode or /decode' });
      return;
    }
    const origin = req.headers.origin;
    if (origin !== undefined) {
      if (!origins.has(origin) && !origins.has('*')) {
        sendJson(res, 403, { error: `origin ${origin} is not allowed; add it to SITEFLEET_CODEC_CORS_ORIGINS` });
        return;
      }
      res.setHeader('Access-Control-Allow-Origin', origin);
      res.setHeader('Access-Control-Allow-Credentials', 'true');
      res.setHeader('Vary', 'Origin');
    }
    if (req.method === 'OPTIONS') {
      res.writeHead(204, {
        'Access-Control-Allow-Methods': 'POST, OPTIONS',
        'Access-Control-Allow-Headers': ALLOWED_HEADERS,
        'Access-Control-Max-Age': '600',
      });
      res.end();
      return;
    }
    handle(req, res, segment).catch((err: unknown) => {
      const status = err instanceof HttpError ? err.status : 500;
      const message = messageOf(err);
      if (!res.headersSent) sendJson(res, status, { error: message });
      else res.destroy();
    });
  };
}

/** Runs the codec endpoint on its own port. */
export async function startCodecServer(options: CodecServerOptions): Promise<RunningCodecServer> {
  const server = createServer(createCodecHandler(options));
  const host = options.host ?? '127.0.0.1';
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port ?? 8888, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const { port } = server.address() as AddressInfo;
  const urlHost = host.includes(':') ? `[${host}]` : host === '0.0.0.0' ? '127.0.0.1' : host;
  return {
    server,
    url: `http://${urlHost}:${port}`,
    close: () =>
      new Promise<void>((resolve, reject) => {
        server.close((err) => (err ? reject(err) : resolve()));
        server.closeAllConnections();
      }),
  };
}
