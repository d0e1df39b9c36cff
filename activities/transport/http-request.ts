/**
 * One HTTP request from this worker to a site through one node: the node's address in the URL, the site's domain
 * in the Host header (and as the TLS server name). Used by the probe and the WordPress installer.
 */
import { request as httpRequest, type IncomingMessage } from 'node:http';
import { request as httpsRequest } from 'node:https';

/** Bodies beyond this are cut (probes look for a marker near the top). */
const MAX_BODY_BYTES = 1024 * 1024;

export interface NodeRequest {
  /** `http://NODE:PORT/path` or `https://...`. */
  url: string;
  /** The site's domain: Host header and TLS server name. */
  host: string;
  method?: 'GET' | 'POST';
  /** Form fields, sent as application/x-www-form-urlencoded. */
  form?: Record<string, string>;
  timeoutMs: number;
  signal?: AbortSignal;
}

export interface NodeResponse {
  status: number;
  headers: IncomingMessage['headers'];
  body: string;
}

/**
 * Sends the request and resolves with status, headers and (up to 1 MiB of) body. TLS certificates are not
 * verified: a node may serve a self-signed certificate, and the question is whether the node serves the site.
 */
export function requestThroughNode(req: NodeRequest): Promise<NodeResponse> {
  return new Promise((resolve, reject) => {
    const body = req.form ? new URLSearchParams(req.form).toString() : undefined;
    const headers: Record<string, string> = { Host: req.host, 'User-Agent': 'sitefleet' };
    if (body !== undefined) {
      headers['Content-Type'] = 'application/x-www-form-urlencoded';
      headers['Content-Length'] = String(Buffer.byteLength(body));
    }
    const onResponse = (res: IncomingMessage): void => {
      const chunks: Buffer[] = [];
      let size = 0;
      res.on('data', (c: Buffer) => {
        size += c.length;
        if (size <= MAX_BODY_BYTES) chunks.push(c);
      });
      res.on('end', () =>
        resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString('utf8') }),
      );
      res.on('error', reject);
    };
    const options = { method: req.method ?? 'GET', headers, timeout: req.timeoutMs, signal: req.signal };
    const request = req.url.startsWith('https:')
      ? httpsRequest(req.url, { ...options, servername: req.host, rejectUnauthorized: false }, onResponse)
      : httpRequest(req.url, options, onResponse);
    request.on('timeout', () => request.destroy(new Error(`no answer within ${req.timeoutMs} ms`)));
    request.on('error', reject);
    request.end(body);
  });
}
