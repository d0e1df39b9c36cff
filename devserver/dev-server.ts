/**
 * The embedded Temporal dev server: SQLite file in the data directory (state survives restarts), Web UI, and
 * sitefleet's search attributes registered.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { Connection } from '@temporalio/client';
import { ALL_SEARCH_ATTRIBUTES } from '../domain/search-attributes';
import type { Settings } from '../config/settings';

/** True when a Temporal frontend answers at the address. */
export async function temporalAnswers(address: string): Promise<boolean> {
  try {
    const conn = await Connection.connect({ address, connectTimeout: '1s' });
    try {
      await conn.workflowService.getSystemInfo({});
      return true;
    } finally {
      await conn.close();
    }
  } catch {
    return false;
  }
}

function searchAttributeArgs(): string[] {
  const type = { KEYWORD: 'Keyword', KEYWORD_LIST: 'KeywordList', BOOL: 'Bool' } as Record<string, string>;
  return ALL_SEARCH_ATTRIBUTES.flatMap((key) => ['--search-attribute', `${key.name}=${type[key.type] ?? 'Keyword'}`]);
}

/** Starts `temporal server start-dev` and resolves once its frontend answers. */
export async function startDevServer(cli: string, settings: Settings): Promise<ChildProcess> {
  mkdirSync(settings.dataDir, { recursive: true });
  const [host, portText] = settings.temporalAddress.split(':');
  const args = [
    'server',
    'start-dev',
    '--db-filename',
    join(settings.dataDir, 'temporal.sqlite'),
    '--ip',
    host ?? '127.0.0.1',
    '--port',
    portText ?? '7233',
    '--ui-port',
    String(settings.uiPort),
    '--namespace',
    settings.namespace,
    '--log-level',
    'warn',
    ...searchAttributeArgs(),
  ];
  const child = spawn(cli, args, { stdio: ['ignore', 'inherit', 'inherit'] });
  const deadline = Date.now() + 30_000;
  while (Date.now() < deadline) {
    if (child.exitCode !== null) throw new Error(`temporal server start-dev exited with code ${child.exitCode}`);
    if (await temporalAnswers(settings.temporalAddress)) return child;
    await new Promise((r) => setTimeout(r, 250));
  }
  child.kill('SIGTERM');
  throw new Error(`temporal server start-dev did not answer at ${settings.temporalAddress} within 30 s`);
}
