/**
 * The Temporal server of the production topology (`npm run stack`), built from source with `go install` into a cache
 * outside the repository, as the CLI is (devserver/temporal-cli.ts): the same server version the CLI's dev server
 * embeds, with its SQL schema tool.
 *
 * Order: $SITEFLEET_TEMPORAL_SERVER_DIR (holding `server` and `sql`), the cache, then `go install` into the cache.
 */
import { execFile } from 'node:child_process';
import { accessSync, constants, existsSync, mkdirSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);

export const TEMPORAL_SERVER_VERSION = 'v1.29.1';
const MODULE = 'go.temporal.io/server';

export interface TemporalServerBinaries {
  /** `server` (go.temporal.io/server/cmd/server) */
  server: string;
  /** `sql`, the temporal-sql-tool (go.temporal.io/server/cmd/tools/sql) */
  sql: string;
  /** The module's schema/postgresql/v12 directory (temporal/ and visibility/ with versioned/ inside). */
  postgresSchemaDir: string;
}

function cacheDir(): string {
  const base =
    process.env.SITEFLEET_CACHE_DIR ?? join(process.env.XDG_CACHE_HOME ?? join(homedir(), '.cache'), 'sitefleet');
  return join(base, `temporal-server-${TEMPORAL_SERVER_VERSION}`);
}

function isExecutable(path: string): boolean {
  try {
    accessSync(path, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

function goBinary(): string | undefined {
  for (const dir of (process.env.PATH ?? '').split(':'))
    if (dir && isExecutable(join(dir, 'go'))) return join(dir, 'go');
  return isExecutable('/usr/local/go/bin/go') ? '/usr/local/go/bin/go' : undefined;
}

async function goModCache(go: string): Promise<string> {
  const { stdout } = await run(go, ['env', 'GOMODCACHE']);
  return stdout.trim();
}

/** Finds or builds the server and its SQL tool. Throws a message that says what to do when Go is missing. */
export async function ensureTemporalServer(log: (line: string) => void = console.log): Promise<TemporalServerBinaries> {
  const dir = process.env.SITEFLEET_TEMPORAL_SERVER_DIR ?? cacheDir();
  const server = join(dir, 'server');
  const sql = join(dir, 'sql');
  const go = goBinary();
  if (!go) {
    throw new Error(
      `The Temporal server ${TEMPORAL_SERVER_VERSION} is built from source with Go, which is not installed ` +
        '(https://go.dev/dl/), or set SITEFLEET_TEMPORAL_SERVER_DIR to a directory holding its server and sql binaries.',
    );
  }
  const moduleDir = join(await goModCache(go), `${MODULE}@${TEMPORAL_SERVER_VERSION}`);
  if (!isExecutable(server) || !isExecutable(sql) || !existsSync(moduleDir)) {
    mkdirSync(dir, { recursive: true });
    log(`Building the Temporal server ${TEMPORAL_SERVER_VERSION} with go install into ${dir} (a few minutes, once)...`);
    const started = Date.now();
    await run(
      go,
      [
        'install',
        `${MODULE}/cmd/server@${TEMPORAL_SERVER_VERSION}`,
        `${MODULE}/cmd/tools/sql@${TEMPORAL_SERVER_VERSION}`,
      ],
      { env: { ...process.env, GOBIN: dir, GOFLAGS: '-mod=mod' }, maxBuffer: 64 * 1024 * 1024 },
    );
    if (!isExecutable(server) || !isExecutable(sql))
      throw new Error(`go install finished but ${dir} lacks server or sql`);
    log(`Built ${server} and ${sql} in ${Math.round((Date.now() - started) / 1000)} s`);
  }
  const postgresSchemaDir = join(moduleDir, 'schema', 'postgresql', 'v12');
  if (!existsSync(join(postgresSchemaDir, 'temporal', 'versioned'))) {
    throw new Error(`the server's schema directory ${postgresSchemaDir} is missing (go clean -modcache?); run again`);
  }
  return { server, sql, postgresSchemaDir };
}
