/**
 * A real PostgreSQL for tests. With SITEFLEET_TEST_POSTGRES_URL set (a server CI already runs; the URL of a role
 * allowed to CREATE DATABASE), tests use that server. Otherwise a throwaway server is started from the installed
 * binaries (Debian's postgresql package: /usr/lib/postgresql/<version>/bin, or SITEFLEET_TEST_POSTGRES_BIN):
 * initdb into a temporary directory (owned by the `postgres` user when running as root), listening on 127.0.0.1 on
 * a free port with its unix socket inside that directory, password authentication, no fsync. `stop()` stops it and
 * removes the directory; a process exit that skips `stop()` still stops the server.
 *
 * One server per test file: `const pg = await startTestPostgres()` in `before`, `await pg.stop()` in `after`;
 * `await pg.createDatabase()` gives the URL of a fresh empty database for each store under test.
 */
import { spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import {
  chownSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Client } from 'pg';
import { findPostgresBin, initPostgresCluster, postgresUser, type PostgresUser } from '../../devserver/postgres';
import { messageOf } from '../../common/error-message';

export interface TestPostgres {
  /** URL of the server's maintenance database (`postgres`), as a superuser or a role that may create databases. */
  readonly adminUrl: string;
  /** Creates an empty database and returns its URL; `stop()` drops it (external server) or removes it all. */
  createDatabase(): Promise<string>;
  stop(): Promise<void>;
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      const port = typeof address === 'object' && address ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}

function run(
  cmd: string,
  args: string[],
  as: PostgresUser,
  cwd: string,
): Promise<{ code: number | null; output: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, {
      ...as,
      cwd,
      env: { PATH: process.env.PATH ?? '/usr/bin:/bin', LANG: 'C.UTF-8', LC_ALL: 'C.UTF-8', TZ: 'UTC' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let output = '';
    child.stdout.on('data', (d: Buffer) => (output += d.toString()));
    child.stderr.on('data', (d: Buffer) => (output += d.toString()));
    child.once('error', reject);
    child.once('close', (code) => resolve({ code, output }));
  });
}

function withDatabase(url: string, database: string): string {
  const u = new URL(url);
  u.pathname = `/${encodeURIComponent(database)}`;
  return u.toString();
}

let databases = 0;

/** Creates databases on the server at `adminUrl`; `dropAll` drops those it created. */
function databaseMaker(adminUrl: string): { create(): Promise<string>; dropAll(): Promise<void> } {
  const created: string[] = [];
  const admin = async <T>(fn: (client: Client) => Promise<T>): Promise<T> => {
    const client = new Client({ connectionString: adminUrl });
    await client.connect();
    try {
      return await fn(client);
    } finally {
      await client.end();
    }
  };
  return {
    async create() {
      // Unique across processes and runs, for a server shared by CI.
      const name = `sitefleet_test_${process.pid}_${++databases}_${randomBytes(3).toString('hex')}`;
      await admin((c) => c.query(`CREATE DATABASE ${name} TEMPLATE template0 ENCODING 'UTF8'`));
      created.push(name);
      return withDatabase(adminUrl, name);
    },
    async dropAll() {
      if (created.length === 0) return;
      await admin(async (c) => {
        for (const name of created.splice(0)) await c.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
      });
    },
  };
}

/** Starts a throwaway PostgreSQL server, or uses SITEFLEET_TEST_POSTGRES_URL. */
export async function startTestPostgres(env: NodeJS.ProcessEnv = process.env): Promise<TestPostgres> {
  const external = env.SITEFLEET_TEST_POSTGRES_URL;
  if (external) {
    const maker = databaseMaker(external);
    return { adminUrl: external, createDatabase: () => maker.create(), stop: () => maker.dropAll() };
  }

  const bin = findPostgresBin(env.SITEFLEET_TEST_POSTGRES_BIN ? [env.SITEFLEET_TEST_POSTGRES_BIN] : []);
  if (!bin) {
    throw new Error(
      'no PostgreSQL server binaries (initdb, pg_ctl) found: install the Debian package postgresql, ' +
        'set SITEFLEET_TEST_POSTGRES_BIN to their directory, or SITEFLEET_TEST_POSTGRES_URL to a running server',
    );
  }
  const as = postgresUser();
  const dir = mkdtempSync(join(tmpdir(), 'sitefleet-pg-'));
  const data = join(dir, 'data');
  const socketDir = join(dir, 'socket');
  const log = join(dir, 'server.log');
  const pwfile = join(dir, 'password');
  const password = randomBytes(18).toString('base64url');
  const pgCtl = join(bin, 'pg_ctl');
  let running = false;
  const stopNow = () => {
    if (running) spawnSync(pgCtl, ['stop', '-D', data, '-m', 'immediate', '-w', '-s'], { ...as, cwd: dir });
    running = false;
  };
  const cleanup = () => {
    stopNow();
    rmSync(dir, { recursive: true, force: true });
  };
  // A test file that ends without `stop()` (failure in `before`, process.exit) must not leave a server behind.
  process.once('exit', cleanup);
  const fail = (what: string, output: string): never => {
    const serverLog = existsSync(log) ? readFileSync(log, 'utf8') : '';
    cleanup();
    process.removeListener('exit', cleanup);
    throw new Error(`test PostgreSQL: ${what}\n${output}\n${serverLog}`.trim());
  };

  mkdirSync(socketDir);
  writeFileSync(pwfile, `${password}\n`, { mode: 0o600 });
  if (as.uid !== undefined && as.gid !== undefined) {
    for (const path of [dir, socketDir, pwfile]) chownSync(path, as.uid, as.gid);
  }
  try {
    initPostgresCluster({ bin, data, pwfile, as, socketDir, settings: ['max_connections = 100'], throwaway: true });
  } catch (err) {
    fail('initdb failed', messageOf(err));
  }
  rmSync(pwfile);

  // Another process may take the free port before the server binds it: try a few.
  let port = 0;
  for (let attempt = 1; !running; attempt++) {
    port = await freePort();
    const start = await run(
      pgCtl,
      ['start', '-D', data, '-l', log, '-w', '-t', '60', '-s', '-o', `-p ${port}`],
      as,
      dir,
    );
    if (start.code === 0) running = true;
    else if (attempt >= 3) fail('pg_ctl start failed', start.output);
  }

  const adminUrl = `postgres://postgres:${encodeURIComponent(password)}@127.0.0.1:${port}/postgres`;
  const maker = databaseMaker(adminUrl);
  return {
    adminUrl,
    createDatabase: () => maker.create(),
    async stop() {
      process.removeListener('exit', cleanup);
      if (running) {
        const stop = await run(pgCtl, ['stop', '-D', data, '-m', 'fast', '-w', '-s'], as, dir);
        if (stop.code === 0) running = false;
      }
      cleanup();
    },
  };
}
