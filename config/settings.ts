/**
 * sitefleet's configuration: one place, read from the environment, with defaults that work for the embedded setup.
 *
 * | variable | default | meaning |
 * |---|---|---|
 * | SITEFLEET_DATA_DIR | ./.data | dev server SQLite file, inventory, API token, worker secret |
 * | TEMPORAL_ADDRESS | 127.0.0.1:7233 | Temporal frontend; if a server answers there, sitefleet uses it |
 * | TEMPORAL_NAMESPACE | default | namespace |
 * | SITEFLEET_TASK_QUEUE | sitefleet | task queue of the worker |
 * | SITEFLEET_UI_PORT | 8233 | Web UI port of the embedded dev server |
 * | SITEFLEET_UI_URL | http://127.0.0.1:8233 | Web UI base URL used in links |
 * | SITEFLEET_API_HOST | 127.0.0.1 | API listen address |
 * | SITEFLEET_API_PORT | 8080 | API port |
 * | SITEFLEET_TEMPORAL_BIN | (cache, then PATH) | an existing temporal CLI binary |
 * | SITEFLEET_SSH_KEY | ~/.ssh/id_ed25519 | the worker's default ssh private key (servers without ssh.keyPath) |
 * | SITEFLEET_SSH_KEY_DIRS | ~/.ssh:$SITEFLEET_DATA_DIR/ssh-keys | directories a server's ssh.keyPath may name, colon-separated |
 * | SITEFLEET_INVENTORY_URL | (none: the SQLite file) | postgres://user:password@host:5432/db inventory |
 * | SITEFLEET_CODEC_KEY_FILE | (none: payloads plain) | payload encryption keys, `id:base64` lines, first is current |
 * | SITEFLEET_CODEC_KEY | (none) | one payload key `id:base64`, instead of the file |
 * | SITEFLEET_CODEC_HOST | 127.0.0.1 | codec endpoint listen address (codec/main.ts) |
 * | SITEFLEET_CODEC_PORT | 8888 | codec endpoint port |
 * | SITEFLEET_CODEC_CORS_ORIGINS | the Web UI's origin | browser origins allowed to call the codec endpoint, comma-separated |
 * | SITEFLEET_CODEC_TOKEN | (none) | bearer token the codec endpoint requires |
 * | SITEFLEET_METRICS_ADDRESS | (off) | host:port of the worker's Prometheus metrics: the Temporal SDK's and sitefleet's |
 */
import { homedir } from 'node:os';
import { isAbsolute, join, resolve } from 'node:path';

export interface Settings {
  dataDir: string;
  temporalAddress: string;
  namespace: string;
  taskQueue: string;
  uiPort: number;
  uiUrl: string;
  apiHost: string;
  apiPort: number;
  /** Worker secret used to derive per-site database passwords (never leaves the workers). */
  secretFile: string;
  inventoryFile: string;
  tokenFile: string;
  /**
   * Directories whose files a server's `ssh.keyPath` may name (api/key-path.ts); any other path is refused, so that
   * a client cannot make the worker read the API token or another file of the controller.
   */
  sshKeyDirs: string[];
  /** PostgreSQL inventory (postgres://...); unset: the SQLite file. */
  inventoryUrl?: string;
  /** Payload encryption keys; with codecKey also unset, payloads stay plain (codec/codec-keys.ts). */
  codecKeyFile?: string;
  codecKey?: string;
  codecHost: string;
  codecPort: number;
  /** Empty: the Web UI's origin (codec/main.ts). */
  codecCorsOrigins: string[];
  codecToken?: string;
  /** host:port of the runtime's Prometheus exporter (metrics/runtime.ts); unset: not served. */
  metricsAddress?: string;
}

function port(env: NodeJS.ProcessEnv, name: string, fallback: number): number {
  const raw = env[name];
  if (raw === undefined || raw === '') return fallback;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < 1 || n > 65535) throw new Error(`${name}=${raw}: must be a TCP port (1-65535)`);
  return n;
}

function sshKeyDirs(env: NodeJS.ProcessEnv, dataDir: string): string[] {
  const raw = env.SITEFLEET_SSH_KEY_DIRS;
  if (raw === undefined || raw.trim() === '') return [join(homedir(), '.ssh'), join(dataDir, 'ssh-keys')];
  const dirs = raw.split(':').filter(Boolean);
  for (const dir of dirs) {
    if (!isAbsolute(dir) || resolve(dir) === '/') {
      throw new Error(`SITEFLEET_SSH_KEY_DIRS=${raw}: "${dir}" must be an absolute directory other than /`);
    }
  }
  return dirs.map((dir) => resolve(dir));
}

function metricsAddress(env: NodeJS.ProcessEnv): string | undefined {
  if (env.SITEFLEET_RUNTIME_METRICS_ADDRESS) {
    throw new Error(
      `SITEFLEET_RUNTIME_METRICS_ADDRESS=${env.SITEFLEET_RUNTIME_METRICS_ADDRESS}: no longer read; ` +
        'SITEFLEET_METRICS_ADDRESS serves the Temporal SDK\'s metrics and sitefleet\'s on one port',
    );
  }
  return env.SITEFLEET_METRICS_ADDRESS || undefined;
}

export function loadSettings(env: NodeJS.ProcessEnv = process.env): Settings {
  const dataDir = resolve(env.SITEFLEET_DATA_DIR ?? '.data');
  const uiPort = port(env, 'SITEFLEET_UI_PORT', 8233);
  return {
    dataDir,
    temporalAddress: env.TEMPORAL_ADDRESS ?? '127.0.0.1:7233',
    namespace: env.TEMPORAL_NAMESPACE ?? 'default',
    taskQueue: env.SITEFLEET_TASK_QUEUE ?? 'sitefleet',
    uiPort,
    uiUrl: env.SITEFLEET_UI_URL ?? `http://127.0.0.1:${uiPort}`,
    apiHost: env.SITEFLEET_API_HOST ?? '127.0.0.1',
    apiPort: port(env, 'SITEFLEET_API_PORT', 8080),
    secretFile: env.SITEFLEET_SECRET_FILE ?? join(dataDir, 'worker-secret'),
    inventoryFile: env.SITEFLEET_INVENTORY_FILE ?? join(dataDir, 'inventory.sqlite'),
    tokenFile: env.SITEFLEET_TOKEN_FILE ?? join(dataDir, 'api-token'),
    sshKeyDirs: sshKeyDirs(env, dataDir),
    inventoryUrl: env.SITEFLEET_INVENTORY_URL || undefined,
    codecKeyFile: env.SITEFLEET_CODEC_KEY_FILE || undefined,
    codecKey: env.SITEFLEET_CODEC_KEY || undefined,
    codecHost: env.SITEFLEET_CODEC_HOST || '127.0.0.1',
    codecPort: port(env, 'SITEFLEET_CODEC_PORT', 8888),
    codecCorsOrigins: (env.SITEFLEET_CODEC_CORS_ORIGINS ?? '')
      .split(',')
      .map((origin) => origin.trim())
      .filter(Boolean),
    codecToken: env.SITEFLEET_CODEC_TOKEN || undefined,
    metricsAddress: metricsAddress(env),
  };
}
