/**
 * The CLI's client of the sitefleet API: JSON over HTTP with the bearer token; refusals become ApiError
 * carrying the API's message and field problems.
 */
import { readFileSync } from 'node:fs';
import { loadSettings } from '../config/settings';

export class ApiError extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly body: unknown,
  ) {
    super(message);
  }

  /** The API's field problems, one `field: rule` line each. */
  get fieldLines(): string[] {
    const fields = (this.body as { fields?: { field: string; rule: string }[] } | undefined)?.fields ?? [];
    return fields.map((f) => `${f.field}: ${f.rule}`);
  }
}

export interface ApiConnection {
  url: string;
  token: string;
}

/**
 * Where the API is and which token to send: flags first, then SITEFLEET_API_URL / SITEFLEET_TOKEN,
 * then the API's own settings (listen address, token file) for the CLI on the controller.
 */
export function resolveConnection(flags: { apiUrl?: string; token?: string }, env: NodeJS.ProcessEnv): ApiConnection {
  const settings = loadSettings(env);
  const url = (flags.apiUrl ?? env.SITEFLEET_API_URL ?? `http://${settings.apiHost}:${settings.apiPort}`).replace(
    /\/+$/,
    '',
  );
  let token = flags.token ?? env.SITEFLEET_TOKEN;
  if (!token) {
    try {
      token = readFileSync(settings.tokenFile, 'utf8').trim();
    } catch (err) {
      throw new Error(
        `no API token: set SITEFLEET_TOKEN, pass --token, or make ${settings.tokenFile} readable ` +
          `(${(err as NodeJS.ErrnoException).code ?? String(err)})`,
      );
    }
  }
  return { url, token };
}

export class ApiClient {
  constructor(private readonly conn: ApiConnection) {}

  get url(): string {
    return this.conn.url;
  }

  async request<T = unknown>(method: string, path: string, body?: unknown): Promise<{ status: number; body: T }> {
    let res: Response;
    try {
      res = await fetch(this.conn.url + path, {
        method,
        headers: {
          authorization: `Bearer ${this.conn.token}`,
          accept: 'application/json',
          ...(body !== undefined ? { 'content-type': 'application/json' } : {}),
        },
        ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
      });
    } catch (err) {
      const cause = (err as { cause?: { code?: string; message?: string } }).cause;
      throw new Error(
        `cannot reach the sitefleet API at ${this.conn.url} (${cause?.code ?? cause?.message ?? String(err)}); ` +
          'is it running? Set SITEFLEET_API_URL or --api-url',
      );
    }
    const text = await res.text();
    let parsed: unknown = undefined;
    if (text) {
      try {
        parsed = JSON.parse(text);
      } catch {
        parsed = text;
      }
    }
    if (res.status >= 400) {
      const message =
        (parsed as { error?: string } | undefined)?.error ??
        `${method} ${path} answered ${res.status} ${res.statusText}`;
      throw new ApiError(res.status, message, parsed);
    }
    return { status: res.status, body: parsed as T };
  }

  get<T = unknown>(path: string): Promise<T> {
    return this.request<T>('GET', path).then((r) => r.body);
  }
}

/** A path segment for a name or a domain (already validated by the API, encoded anyway). */
export const seg = (s: string): string => encodeURIComponent(s);
