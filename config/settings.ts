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
 */
import { resolve, join } from 'node:path';

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
}

function port(name: string, fallback: number): number {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return fallback;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < 1 || n > 65535) throw new Error(`${name}=${raw}: must be a TCP port (1-65535)`);
  return n;
}

export function loadSettings(env: NodeJS.ProcessEnv = process.env): Settings {
  const dataDir = resolve(env.SITEFLEET_DATA_DIR ?? '.data');
  const uiPort = port('SITEFLEET_UI_PORT', 8233);
  return {
    dataDir,
    temporalAddress: env.TEMPORAL_ADDRESS ?? '127.0.0.1:7233',
    namespace: env.TEMPORAL_NAMESPACE ?? 'default',
    taskQueue: env.SITEFLEET_TASK_QUEUE ?? 'sitefleet',
    uiPort,
    uiUrl: env.SITEFLEET_UI_URL ?? `http://127.0.0.1:${uiPort}`,
    apiHost: env.SITEFLEET_API_HOST ?? '127.0.0.1',
    apiPort: port('SITEFLEET_API_PORT', 8080),
    secretFile: env.SITEFLEET_SECRET_FILE ?? join(dataDir, 'worker-secret'),
    inventoryFile: env.SITEFLEET_INVENTORY_FILE ?? join(dataDir, 'inventory.sqlite'),
    tokenFile: env.SITEFLEET_TOKEN_FILE ?? join(dataDir, 'api-token'),
  };
}
