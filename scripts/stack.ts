/**
 * `npm run stack -- up|down|status [--dir DIR] [--base-port N] [--workers N]`: the production topology of
 * docker-compose.yml on this machine, without containers (devserver/stack.ts; docs/production.md maps the two).
 * `up` returns once everything answers, leaving the processes running; `down` stops them and keeps the data.
 */
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { loadSettings } from '../config/settings';
import { stackDown, stackUp } from '../devserver/stack';
import { readStackState, stackAddresses } from '../devserver/stack-state';

const USAGE = 'usage: npm run stack -- up|down|status [--dir DIR] [--base-port N] [--workers N]';

async function main(): Promise<void> {
  const { values, positionals } = parseArgs({
    options: {
      dir: { type: 'string' },
      'base-port': { type: 'string' },
      workers: { type: 'string' },
    },
    allowPositionals: true,
  });
  const [command, ...rest] = positionals;
  if (!command || rest.length > 0 || !['up', 'down', 'status'].includes(command)) throw new Error(USAGE);
  const dir = values.dir ?? join(loadSettings().dataDir, 'stack');
  const basePort = values['base-port'] === undefined ? undefined : Number(values['base-port']);
  if (basePort !== undefined && (!Number.isInteger(basePort) || basePort < 1024 || basePort > 32750)) {
    throw new Error(
      `--base-port "${values['base-port']}": a port from 1024 to 32750 (the stack uses the next 14; Temporal stores membership ports as a smallint)`,
    );
  }
  const workers = values.workers === undefined ? undefined : Number(values.workers);
  if (workers !== undefined && (!Number.isInteger(workers) || workers < 1 || workers > 2)) {
    throw new Error(`--workers "${values.workers}": 1 or 2`);
  }
  if (command === 'down') return stackDown(dir);
  if (command === 'status') {
    const s = readStackState(dir);
    if (!s) return void console.log(`no stack in ${dir}`);
    console.log(
      JSON.stringify({ ...stackAddresses(s), pids: s.pids }, null, 2).replace(/:\/\/(\w+):[^@]+@/g, '://$1:***@'),
    );
    return;
  }
  const s = await stackUp({ dir, ...(basePort ? { basePort } : {}), ...(workers ? { workers } : {}) });
  const a = stackAddresses(s);
  console.log(
    [
      '',
      'sitefleet stack is up',
      `  Temporal frontend: ${a.temporal} (namespace ${s.namespace}; PostgreSQL ${a.postgres})`,
      `  HTTP API:          ${a.api}/v1 (token in ${join(s.dir, 'sitefleet', 'api-token')})`,
      `  codec endpoint:    ${a.codec}`,
      `  workers:           ${s.workers} (metrics ${a.workerMetrics.join(', ')})`,
      `  logs:              ${join(s.dir, 'logs')}`,
      `Stop it with: npm run stack -- down${values.dir ? ` --dir ${values.dir}` : ''}`,
    ].join('\n'),
  );
}

main().catch((err: unknown) => {
  console.error(err instanceof Error ? err.message : err);
  process.exit(1);
});
