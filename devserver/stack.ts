/**
 * The production topology of docker-compose.yml, run on this machine without containers (`npm run stack -- up|down`):
 *
 * | compose service | here |
 * |---|---|
 * | postgres | Debian's PostgreSQL (devserver/postgres.ts: initdb into `<dir>/postgres`, run as the `postgres` user when root) |
 * | temporal | the Temporal server built from source (devserver/temporal-server.ts), schema by its sql tool and config in devserver/stack-temporal.ts, as three processes: frontend; history + matching; worker |
 * | temporal-setup | devserver/namespace-setup.ts (what `npm run setup -- --temporal` runs) |
 * | codec | `node dist/js/codec/main.js serve` |
 * | worker | two processes `node --max-old-space-size=160 dist/js/workers/main.js` |
 * | api | `node dist/js/api/main.js` |
 *
 * Every port is `basePort + n` on 127.0.0.1 (STACK_PORTS). State (passwords, pids, ports) is in `<dir>/stack.json`
 * (devserver/stack-state.ts);
 * `down` stops only the processes recorded there, by pid.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmodSync, chownSync, closeSync, existsSync, mkdirSync, openSync, readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { Client as PgClient } from 'pg';
import { Connection } from '@temporalio/client';
import { WORKER_ENV, WORKER_NODE_OPTIONS } from '../workers/node-options';
import { ensureTemporalServer } from './temporal-server';
import { setupNamespace } from './namespace-setup';
import { temporalAnswers, waitForTemporal } from './dev-server';
import { findPostgresBin, initPostgresCluster, postgresUser } from './postgres';
import { runChecked } from './run-checked';
import { canConnect } from '../common/tcp';
import {
  readStackState,
  saveStackState,
  stackAddresses,
  STACK_PORTS,
  STACK_ROOT,
  type StackState,
} from './stack-state';
import { setupTemporalSchema, TEMPORAL_PROCESSES, writeTemporalConfig } from './stack-temporal';

function postgresBin(): string {
  const bin = findPostgresBin();
  if (!bin) throw new Error('no PostgreSQL server binaries (initdb, pg_ctl) found: apt-get install postgresql');
  return bin;
}

async function startPostgres(s: StackState, log: (l: string) => void): Promise<void> {
  const bin = postgresBin();
  const as = postgresUser();
  const pgDir = join(s.dir, 'postgres');
  const data = join(pgDir, 'data');
  const port = s.basePort + STACK_PORTS.postgres;
  if (!existsSync(data)) {
    log(`postgres: initdb ${data}`);
    mkdirSync(pgDir, { recursive: true, mode: 0o700 });
    const pwfile = join(pgDir, 'pw');
    writeFileSync(pwfile, `${s.postgresAdminPassword}\n`, { mode: 0o600 });
    if (as.uid !== undefined) for (const p of [pgDir, pwfile]) chownSync(p, as.uid, as.gid!);
    initPostgresCluster({
      bin,
      data,
      pwfile,
      as,
      socketDir: pgDir,
      settings: [`port = ${port}`, 'max_connections = 200'],
    });
  }
  if (spawnSync(join(bin, 'pg_ctl'), ['status', '-D', data], as).status === 0) {
    log('postgres: already running');
  } else {
    log(`postgres: starting on 127.0.0.1:${port}`);
    runChecked(
      join(bin, 'pg_ctl'),
      ['start', '-D', data, '-l', join(pgDir, 'server.log'), '-w', '-t', '120', '-s'],
      as,
    );
  }
  const admin = new PgClient({
    host: '127.0.0.1',
    port,
    user: 'postgres',
    password: s.postgresAdminPassword,
    database: 'postgres',
  });
  await admin.connect();
  try {
    // Roles and databases as deploy/postgres/init-inventory-db.sh and the temporal image's auto-setup create them.
    for (const [role, pw] of [
      ['temporal', s.temporalDbPassword],
      ['sitefleet', s.inventoryDbPassword],
    ] as const) {
      const exists = await admin.query('SELECT 1 FROM pg_roles WHERE rolname = $1', [role]);
      const literal = `'${pw.replace(/'/g, "''")}'`;
      if (exists.rowCount === 0)
        await admin.query(`CREATE ROLE ${role} LOGIN PASSWORD ${literal}${role === 'temporal' ? ' CREATEDB' : ''}`);
    }
    const db = await admin.query("SELECT 1 FROM pg_database WHERE datname = 'sitefleet'");
    if (db.rowCount === 0) await admin.query('CREATE DATABASE sitefleet OWNER sitefleet');
  } finally {
    await admin.end();
  }
}

function pidAlive(pid: number | undefined): boolean {
  if (!pid) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** Starts a detached process with its output in `<dir>/logs/<name>.log`. */
function startProcess(s: StackState, name: string, cmd: string, args: string[], env: NodeJS.ProcessEnv): ChildProcess {
  mkdirSync(join(s.dir, 'logs'), { recursive: true });
  const out = openSync(join(s.dir, 'logs', `${name}.log`), 'a');
  const child = spawn(cmd, args, { detached: true, stdio: ['ignore', out, out], env, cwd: STACK_ROOT });
  closeSync(out);
  child.unref();
  s.pids[name] = child.pid!;
  saveStackState(s);
  return child;
}

function logTail(s: StackState, name: string): { toString(): string; lastAt: number } {
  const file = join(s.dir, 'logs', `${name}.log`);
  let lastSize = 0;
  let lastAt = Date.now();
  return {
    toString: () => (existsSync(file) ? readFileSync(file, 'utf8').slice(-8000) : ''),
    get lastAt() {
      const size = existsSync(file) ? readFileSync(file).length : 0;
      if (size !== lastSize) {
        lastSize = size;
        lastAt = Date.now();
      }
      return lastAt;
    },
  };
}

/** Waits until 127.0.0.1:`port` accepts a connection; fails with the process's log if it exits first (60 s). */
async function waitForListening(port: number, pid: number | undefined, name: string, s: StackState): Promise<void> {
  const deadline = Date.now() + 60_000;
  while (Date.now() < deadline) {
    if (await canConnect('127.0.0.1', port, 1000)) return;
    if (!pidAlive(pid)) throw new Error(`${name} exited before listening on ${port}:\n${logTail(s, name)}`);
    await new Promise((r) => setTimeout(r, 250));
  }
  throw new Error(`${name} did not listen on 127.0.0.1:${port} within 60 s:\n${logTail(s, name)}`);
}

/** Starts the Temporal server process `name` (one of TEMPORAL_PROCESSES) and waits until its ports answer. */
export function startTemporalProcess(s: StackState, server: string, name: string): ChildProcess {
  const proc = TEMPORAL_PROCESSES.find((p) => p.name === name);
  if (!proc) throw new Error(`unknown Temporal process ${name}`);
  const args = [
    '--root',
    s.dir,
    '--config',
    'temporal-config',
    '--env',
    'stack',
    '--allow-no-auth',
    'start',
    ...proc.services.flatMap((x) => ['--service', x]),
  ];
  return startProcess(s, name, server, args, { ...process.env });
}

function sitefleetEnv(s: StackState, extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const a = stackAddresses(s);
  return {
    ...process.env,
    NODE_ENV: 'production',
    TEMPORAL_ADDRESS: a.temporal,
    TEMPORAL_NAMESPACE: s.namespace,
    SITEFLEET_TASK_QUEUE: s.taskQueue,
    SITEFLEET_DATA_DIR: join(s.dir, 'sitefleet'),
    SITEFLEET_INVENTORY_URL: a.inventoryUrl,
    SITEFLEET_CODEC_KEY_FILE: join(s.dir, 'secrets', 'codec-keys'),
    SITEFLEET_SECRET_FILE: join(s.dir, 'secrets', 'worker-secret'),
    SITEFLEET_API_HOST: '127.0.0.1',
    SITEFLEET_API_PORT: String(s.basePort + STACK_PORTS.api),
    SITEFLEET_CODEC_HOST: '127.0.0.1',
    SITEFLEET_CODEC_PORT: String(s.basePort + STACK_PORTS.codec),
    ...extra,
  };
}

/** Starts sitefleet worker number `n` (1-based), as docker-compose's worker service runs it. */
export function startStackWorker(s: StackState, n: number): ChildProcess {
  return startProcess(
    s,
    `worker-${n}`,
    process.execPath,
    [...WORKER_NODE_OPTIONS, join(STACK_ROOT, 'dist', 'js', 'workers', 'main.js')],
    sitefleetEnv(s, {
      ...WORKER_ENV,
      SITEFLEET_METRICS_ADDRESS: `127.0.0.1:${s.basePort + STACK_PORTS.worker1Metrics + n - 1}`,
    }),
  );
}

async function waitHttp(url: string, what: string, pid: number, timeoutMs = 180_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (!pidAlive(pid)) throw new Error(`${what} exited before ${url} answered`);
    try {
      const res = await fetch(url);
      if (res.ok) return;
    } catch {
      // not yet
    }
    await new Promise((r) => setTimeout(r, 500));
  }
  throw new Error(`${what}: ${url} did not answer 200 within ${timeoutMs / 1000} s`);
}

export interface UpOptions {
  dir: string;
  basePort?: number;
  namespace?: string;
  taskQueue?: string;
  workers?: number;
  log?: (line: string) => void;
}

/** Brings the whole stack up (idempotent: what runs is left alone) and returns its state. */
export async function stackUp(opts: UpOptions): Promise<StackState> {
  const log = opts.log ?? ((l: string) => console.log(l));
  const dir = resolve(opts.dir);
  mkdirSync(dir, { recursive: true, mode: 0o755 });
  // PostgreSQL runs as its own user and must reach <dir>/postgres (secrets/ stays 0700).
  chmodSync(dir, 0o755);
  const pw = () => randomBytes(18).toString('base64url');
  const s: StackState = readStackState(dir) ?? {
    dir,
    basePort: opts.basePort ?? 17230,
    namespace: opts.namespace ?? 'default',
    taskQueue: opts.taskQueue ?? 'sitefleet',
    temporalDbPassword: pw(),
    inventoryDbPassword: pw(),
    postgresAdminPassword: pw(),
    pids: {},
    workers: opts.workers ?? 2,
  };
  saveStackState(s);
  const secrets = join(dir, 'secrets');
  mkdirSync(secrets, { recursive: true, mode: 0o700 });
  if (!existsSync(join(secrets, 'codec-keys'))) {
    const id = new Date().toISOString().slice(0, 10);
    writeFileSync(join(secrets, 'codec-keys'), `${id}:${randomBytes(32).toString('base64')}\n`, { mode: 0o600 });
  }
  if (!existsSync(join(secrets, 'worker-secret'))) {
    writeFileSync(join(secrets, 'worker-secret'), `${randomBytes(48).toString('base64')}\n`, { mode: 0o600 });
  }
  if (!existsSync(join(STACK_ROOT, 'dist', 'js', 'workers', 'main.js'))) {
    log('sitefleet: npm run build (compiled workers, API and codec)');
    runChecked('npm', ['run', '--silent', 'build'], { env: { ...process.env } });
  }
  const bins = await ensureTemporalServer(log);
  await startPostgres(s, log);
  await setupTemporalSchema(s, bins.sql, bins.postgresSchemaDir, log);
  writeTemporalConfig(s);
  const a = stackAddresses(s);
  for (const [i, proc] of TEMPORAL_PROCESSES.entries()) {
    if (pidAlive(s.pids[proc.name])) continue;
    log(`temporal: starting ${proc.name} (${proc.services.join(', ')})`);
    startTemporalProcess(s, bins.server, proc.name);
    if (i === 0) {
      // On a fresh store every process initialises the cluster metadata at start; started together, one may lose
      // that race and exit ("failed to initialize current cluster metadata"). The first goes alone until its
      // membership port listens, which it opens only after that step.
      await waitForListening(s.basePort + STACK_PORTS.frontendMembership, s.pids[proc.name], proc.name, s);
    }
  }
  const frontendPid = s.pids['temporal-frontend'];
  // The frontend runs detached (it outlives this command): watch it by pid.
  const frontend = {
    pid: frontendPid,
    get exitCode() {
      return pidAlive(frontendPid) ? null : 1;
    },
    signalCode: null,
    kill: (signal?: NodeJS.Signals) =>
      pidAlive(frontendPid) ? process.kill(frontendPid!, signal ?? 'SIGTERM') : false,
  } as unknown as ChildProcess;
  await waitForTemporal('the Temporal frontend', frontend, a.temporal, logTail(s, 'temporal-frontend'), { log });
  const connection = await Connection.connect({ address: a.temporal });
  try {
    await setupNamespace(connection, s.namespace, { log, retentionDays: 3 });
  } finally {
    await connection.close();
  }
  if (!pidAlive(s.pids.codec)) {
    log('sitefleet: starting the codec endpoint');
    startProcess(
      s,
      'codec',
      process.execPath,
      [join(STACK_ROOT, 'dist', 'js', 'codec', 'main.js'), 'serve'],
      sitefleetEnv(s),
    );
  }
  for (let n = 1; n <= s.workers; n++) {
    if (!pidAlive(s.pids[`worker-${n}`])) {
      log(`sitefleet: starting worker ${n}`);
      startStackWorker(s, n);
    }
  }
  if (!pidAlive(s.pids.api)) {
    log('sitefleet: starting the API');
    startProcess(s, 'api', process.execPath, [join(STACK_ROOT, 'dist', 'js', 'api', 'main.js')], sitefleetEnv(s));
  }
  await waitHttp(`${a.codec}/healthz`, 'the codec endpoint', s.pids.codec!);
  for (let n = 1; n <= s.workers; n++) {
    await waitHttp(`http://${a.workerMetrics[n - 1]}/metrics`, `worker ${n}`, s.pids[`worker-${n}`]!);
  }
  await waitHttp(`${a.api}/v1/health`, 'the API', s.pids.api!);
  return s;
}

async function stopPid(pid: number, graceMs: number): Promise<void> {
  if (!pidAlive(pid)) return;
  process.kill(pid, 'SIGTERM');
  const deadline = Date.now() + graceMs;
  while (pidAlive(pid) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 200));
  if (pidAlive(pid)) process.kill(pid, 'SIGKILL');
}

/** Stops what `up` started (by recorded pid), API and workers first, PostgreSQL last. Keeps the data. */
export async function stackDown(dir: string, log: (l: string) => void = console.log): Promise<void> {
  const s = readStackState(resolve(dir));
  if (!s) return log(`stack: nothing recorded in ${dir}`);
  const order = [
    'api',
    ...Object.keys(s.pids).filter((n) => n.startsWith('worker-')),
    'codec',
    ...TEMPORAL_PROCESSES.map((p) => p.name),
  ];
  for (const name of order) {
    const pid = s.pids[name];
    if (pid === undefined) continue;
    await stopPid(pid, name.startsWith('worker-') ? 70_000 : 20_000);
    delete s.pids[name];
    saveStackState(s);
    log(`stack: ${name} stopped`);
  }
  const data = join(s.dir, 'postgres', 'data');
  if (existsSync(data)) {
    spawnSync(join(postgresBin(), 'pg_ctl'), ['stop', '-D', data, '-m', 'fast', '-w', '-s'], postgresUser());
    log('stack: postgres stopped');
  }
}

export { temporalAnswers };
