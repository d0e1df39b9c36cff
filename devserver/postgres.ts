/**
 * A local PostgreSQL from the installed server binaries, for the production stack without containers (stack.ts)
 * and the tests' throw-away servers (test/support/postgres.ts): where the binaries are, which user runs them, and
 * the cluster's initdb with password authentication, listening on 127.0.0.1 only.
 */
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { delimiter, dirname, join } from 'node:path';
import { runChecked } from './run-checked';

/** The user PostgreSQL runs as: `postgres` when this process is root (initdb and postgres refuse root). */
export interface PostgresUser {
  uid?: number;
  gid?: number;
}

const BINARIES = ['initdb', 'pg_ctl'];

/** The directory holding initdb and pg_ctl: `preferred` ones first, then Debian's newest, then PATH. */
export function findPostgresBin(preferred: string[] = []): string | undefined {
  const candidates = [...preferred];
  const debian = '/usr/lib/postgresql';
  if (existsSync(debian)) {
    const versions = readdirSync(debian)
      .filter((v) => /^\d+$/.test(v))
      .sort((a, b) => Number(b) - Number(a));
    candidates.push(...versions.map((v) => join(debian, v, 'bin')));
  }
  candidates.push(...(process.env.PATH ?? '').split(delimiter).filter(Boolean));
  return candidates.find((dir) => BINARIES.every((b) => existsSync(join(dir, b))));
}

/** `{}` for a non-root process, else the `postgres` user's ids (from /etc/passwd). */
export function postgresUser(): PostgresUser {
  if (process.getuid?.() !== 0) return {};
  for (const line of readFileSync('/etc/passwd', 'utf8').split('\n')) {
    const [user, , uid, gid] = line.split(':');
    if (user === 'postgres' && uid !== undefined && gid !== undefined) return { uid: Number(uid), gid: Number(gid) };
  }
  throw new Error('running as root, but there is no "postgres" user to run PostgreSQL as');
}

export interface PostgresClusterSpec {
  bin: string;
  /** The data directory to create (its parent exists and `as` may write it). */
  data: string;
  /** A file holding the `postgres` superuser's password, readable by `as`. */
  pwfile: string;
  as: PostgresUser;
  /** Where the server's unix socket goes. */
  socketDir: string;
  /** More postgresql.conf settings, as written (`port = 5432`). */
  settings?: string[];
  /** No fsync at all: fast, and lost with the machine (tests). @default false */
  throwaway?: boolean;
}

/**
 * Creates a PostgreSQL cluster (initdb: UTF8, locale C, scram-sha-256) that listens on 127.0.0.1 only, in UTC.
 * @throws Error with initdb's output when it fails
 */
export function initPostgresCluster(spec: PostgresClusterSpec): void {
  const throwaway = spec.throwaway ?? false;
  runChecked(
    join(spec.bin, 'initdb'),
    [
      '-D',
      spec.data,
      '-U',
      'postgres',
      '--auth=scram-sha-256',
      `--pwfile=${spec.pwfile}`,
      '--encoding=UTF8',
      '--locale=C',
      ...(throwaway ? ['--no-sync'] : []),
      '--no-instructions',
    ],
    {
      ...spec.as,
      cwd: dirname(spec.data),
      env: { PATH: process.env.PATH ?? '/usr/bin:/bin', LANG: 'C.UTF-8', LC_ALL: 'C.UTF-8', TZ: 'UTC' },
    },
  );
  writeFileSync(
    join(spec.data, 'postgresql.conf'),
    [
      "listen_addresses = '127.0.0.1'",
      `unix_socket_directories = '${spec.socketDir}'`,
      ...(throwaway ? ['fsync = off', 'synchronous_commit = off', 'full_page_writes = off'] : []),
      "timezone = 'UTC'",
      ...(spec.settings ?? []),
      '',
    ].join('\n'),
    { flag: 'a' },
  );
}
