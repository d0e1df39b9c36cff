/**
 * Site databases on MariaDB/MySQL: `mysql --batch` run as root over ssh on the database server (unix socket, no
 * password), with every statement on stdin — never in argv, where `ps` would show the password. Names derive from
 * the domain; identifiers go in backticks and strings are escaped; the password is derived on the worker
 * (site-secrets.ts) and never logged or returned.
 */
import { createHash } from 'node:crypto';
import { z } from 'zod';
import { domainName, hostAddress } from '../domain/fields';
import { serverSchema, siteSchema, type Server, type Site } from '../domain/model';
import { activityCancellationSignal } from './support/activity-context';
import { parseInput } from './support/activity-input';
import { badInput, FailureType, permanentFailure, transientFailure } from '../common/failures';
import { dbPasswordFor } from './site-secrets';
import { runRemote } from './transport/ssh-command';

/** @default 60 s */
const SQL_TIMEOUT_MS = 60_000;

/**
 * The database name of a site: the domain with non-alphanumerics as `_` (at most 22 characters) plus 8 hex of
 * its sha256, so that `a-b.com` and `a.b.com` differ and every name fits MySQL's 32-character user limit.
 */
export function siteDatabaseName(domain: string): string {
  const d = parseInput(domainName, domain, 'site domain');
  const base = d.replace(/[^a-z0-9]/g, '_').slice(0, 22);
  return `${base}_${createHash('sha256').update(d).digest('hex').slice(0, 8)}`;
}

/** The database user of a site: the same as its database name. */
export const siteDatabaseUser = siteDatabaseName;

/** A MySQL identifier in backticks (a backtick inside is doubled). */
export function sqlIdentifier(name: string): string {
  return `\`${name.replace(/`/g, '``')}\``;
}

/**
 * A MySQL string literal. Backslashes are doubled and quotes are doubled, which is correct with and without
 * NO_BACKSLASH_ESCAPES only for strings without backslashes; callers pass validated values, and a backslash or
 * control character is refused outright.
 */
export function sqlString(value: string): string {
  if (/[\\\0\n\r]/.test(value) || value.includes('\u001a'))
    throw badInput('a SQL string may not contain backslashes or control characters');
  return `'${value.replace(/'/g, "''")}'`;
}

/** An account host: a web node's address, `localhost`, or `%`. */
const accountHost = z.union([hostAddress, z.literal('localhost'), z.literal('%')]);

function dbServiceOf(server: Server): NonNullable<Server['db']> {
  if (!server.db) throw badInput(`server ${server.name} has no db service`);
  return server.db;
}

/** Runs SQL on the database server as its root user; the SQL (and any password in it) goes over stdin. */
async function runSql(server: Server, sql: string, secrets: string[], signal?: AbortSignal): Promise<string[][]> {
  dbServiceOf(server);
  const r = await runRemote(server, ['mysql', '--batch', '--skip-column-names', '--default-character-set=utf8mb4'], {
    timeoutMs: SQL_TIMEOUT_MS,
    stdin: sql,
    signal,
    allowExitCodes: 'any',
    describe: 'mysql (statements on stdin)',
  });
  if (r.code !== 0) {
    let text = `${r.stderr}${r.stdout}`.trim();
    for (const s of secrets) text = text.split(s).join('***');
    if (r.code === 127) {
      throw permanentFailure(
        FailureType.ServerNotReady,
        `server ${server.name}: the mysql client is not installed: ${text}`,
      );
    }
    const refused = /ERROR 1045|Access denied/i.test(text);
    const fail = refused ? permanentFailure : transientFailure;
    throw fail(
      FailureType.DatabaseFailed,
      `server ${server.name}: mysql failed${refused ? ' (root must reach the server over its unix socket)' : ''}: ${text}`,
      { server: server.name },
    );
  }
  return r.stdout
    .split('\n')
    .filter((l) => l !== '')
    .map((l) => l.split('\t'));
}

export interface SiteDatabaseRef {
  dbServer: Server;
  site: Pick<Site, 'domain'>;
}

export interface DatabaseState {
  server: string;
  database: string;
  user: string;
  databaseExists: boolean;
  userExists: boolean;
  /** Hosts the user may connect from. */
  hosts: string[];
}

function parseRef(input: SiteDatabaseRef): { server: Server; domain: string; database: string; user: string } {
  const server = parseInput(serverSchema, input.dbServer, 'dbServer');
  dbServiceOf(server);
  const { domain } = parseInput(siteSchema.pick({ domain: true }), { domain: input.site.domain }, 'site');
  return { server, domain, database: siteDatabaseName(domain), user: siteDatabaseUser(domain) };
}

/** Databases and account hosts of many sites' users, in one query. */
async function readStates(
  server: Server,
  names: { database: string; user: string }[],
  signal?: AbortSignal,
): Promise<Map<string, { databaseExists: boolean; hosts: string[] }>> {
  const states = new Map(names.map((n) => [n.user, { databaseExists: false, hosts: [] as string[] }]));
  if (names.length === 0) return states;
  const list = (values: string[]) => values.map(sqlString).join(', ');
  const rows = await runSql(
    server,
    [
      `SELECT 'db', SCHEMA_NAME FROM information_schema.SCHEMATA WHERE SCHEMA_NAME IN (${list(names.map((n) => n.database))});`,
      `SELECT 'host', User, Host FROM mysql.user WHERE User IN (${list(names.map((n) => n.user))}) ORDER BY User, Host;`,
      '',
    ].join('\n'),
    [],
    signal,
  );
  for (const n of names) {
    const state = states.get(n.user) as { databaseExists: boolean; hosts: string[] };
    state.databaseExists ||= rows.some((r) => r[0] === 'db' && r[1] === n.database);
  }
  for (const r of rows) if (r[0] === 'host') states.get(r[1] as string)?.hosts.push(r[2] as string);
  return states;
}

async function readState(
  server: Server,
  database: string,
  user: string,
  signal?: AbortSignal,
): Promise<{ databaseExists: boolean; hosts: string[] }> {
  return (await readStates(server, [{ database, user }], signal)).get(user) as {
    databaseExists: boolean;
    hosts: string[];
  };
}

/** Whether a site's database and user exist, and from which hosts the user may connect. Changes nothing. */
export async function inspectDatabase(input: SiteDatabaseRef): Promise<DatabaseState> {
  const signal = activityCancellationSignal();
  const { server, database, user } = parseRef(input);
  const state = await readState(server, database, user, signal);
  return {
    server: server.name,
    database,
    user,
    databaseExists: state.databaseExists,
    userExists: state.hosts.length > 0,
    hosts: state.hosts,
  };
}

export interface EnsureDatabaseInput extends SiteDatabaseRef {
  /** Addresses of the web nodes that connect (the user gets one account per address; others are dropped). */
  clients: string[];
}

export interface EnsureDatabaseResult extends DatabaseState {
  /** Accounts this call created or whose host it removed. */
  addedHosts: string[];
  removedHosts: string[];
  createdDatabase: boolean;
}

/**
 * Creates the site's database and its user with all privileges on it, one account per web node address; sets the
 * (derived) password on every account; drops accounts of addresses no longer listed. Idempotent.
 */
export async function ensureDatabase(input: EnsureDatabaseInput): Promise<EnsureDatabaseResult> {
  const signal = activityCancellationSignal();
  const { server, domain, database, user } = parseRef(input);
  const clients = parseClients(input.clients, 'clients');
  const [change] = await setDatabaseAccounts(server, [{ domain, hosts: clients }], { createDatabase: true }, signal);
  const { addedHosts, removedHosts, databaseExisted } = change as DatabaseAccountChange;
  return {
    server: server.name,
    database,
    user,
    databaseExists: true,
    userExists: true,
    hosts: [...clients].sort(),
    addedHosts,
    removedHosts,
    createdDatabase: !databaseExisted,
  };
}

/** A list of account hosts, deduplicated; at least one. */
export function parseClients(clients: unknown, field: string): string[] {
  return [...new Set(parseInput(z.array(accountHost).min(1, 'must list at least one client'), clients, field))];
}

export interface DatabaseAccountChange {
  domain: string;
  /** The hosts the site's user had before (its snapshot, which setDatabaseAccounts can put back). */
  hostsBefore: string[];
  databaseExisted: boolean;
  addedHosts: string[];
  removedHosts: string[];
}

/**
 * Makes each site's user have exactly the accounts `hosts` (created with the derived password and all privileges
 * on the site's database; the others dropped; no hosts: the user is gone), for many sites in one read and one
 * batch of statements. `createDatabase`: create missing databases (never dropped here). Idempotent.
 */
export async function setDatabaseAccounts(
  server: Server,
  sites: { domain: string; hosts: string[] }[],
  options: { createDatabase: boolean },
  signal?: AbortSignal,
): Promise<DatabaseAccountChange[]> {
  const named = sites.map((s) => ({ ...s, database: siteDatabaseName(s.domain), user: siteDatabaseUser(s.domain) }));
  const states = await readStates(server, named, signal);
  const passwords: string[] = [];
  const statements: string[] = [];
  const changes: DatabaseAccountChange[] = [];
  for (const { domain, hosts, database, user } of named) {
    const before = states.get(user) as { databaseExists: boolean; hosts: string[] };
    const stale = before.hosts.filter((h) => !hosts.includes(h));
    const account = (host: string) => `${sqlString(user)}@${sqlString(host)}`;
    if (options.createDatabase) {
      statements.push(
        `CREATE DATABASE IF NOT EXISTS ${sqlIdentifier(database)} CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci;`,
      );
    }
    if (hosts.length > 0) {
      const password = await dbPasswordFor(domain);
      passwords.push(password);
      for (const host of hosts) {
        statements.push(
          `CREATE USER IF NOT EXISTS ${account(host)} IDENTIFIED BY ${sqlString(password)};`,
          `ALTER USER ${account(host)} IDENTIFIED BY ${sqlString(password)};`,
          `GRANT ALL PRIVILEGES ON ${sqlIdentifier(database)}.* TO ${account(host)};`,
        );
      }
    }
    statements.push(...stale.map((host) => `DROP USER IF EXISTS ${account(host)};`));
    changes.push({
      domain,
      hostsBefore: before.hosts,
      databaseExisted: before.databaseExists,
      addedHosts: hosts.filter((h) => !before.hosts.includes(h)),
      removedHosts: stale,
    });
  }
  if (statements.length > 0) await runSql(server, `${statements.join('\n')}\n`, passwords, signal);
  return changes;
}

/** The hosts each site's user may connect from (no user: no hosts), for many sites in one query. */
export async function readDatabaseAccounts(
  server: Server,
  domains: string[],
  signal?: AbortSignal,
): Promise<{ domain: string; hosts: string[] }[]> {
  const named = domains.map((domain) => ({
    domain,
    database: siteDatabaseName(domain),
    user: siteDatabaseUser(domain),
  }));
  const states = await readStates(server, named, signal);
  return named.map((n) => ({ domain: n.domain, hosts: states.get(n.user)?.hosts ?? [] }));
}

export interface DropDatabaseInput extends SiteDatabaseRef {
  /** Drop the database (all its data). */
  dropDatabase: boolean;
  /** Drop every account of the site's user. */
  dropUser: boolean;
}

/** Compensation of ensureDatabase, and DeleteSite's last step: drops what it is told to. Idempotent. */
export async function dropDatabase(
  input: DropDatabaseInput,
): Promise<{ server: string; database: string; user: string; droppedDatabase: boolean; droppedHosts: string[] }> {
  const signal = activityCancellationSignal();
  const { server, database, user } = parseRef(input);
  const before = await readState(server, database, user, signal);
  const statements = [
    ...(input.dropDatabase ? [`DROP DATABASE IF EXISTS ${sqlIdentifier(database)};`] : []),
    ...(input.dropUser ? before.hosts.map((h) => `DROP USER IF EXISTS ${sqlString(user)}@${sqlString(h)};`) : []),
  ];
  if (statements.length > 0) await runSql(server, `${statements.join('\n')}\n`, [], signal);
  return {
    server: server.name,
    database,
    user,
    droppedDatabase: input.dropDatabase && before.databaseExists,
    droppedHosts: input.dropUser ? before.hosts : [],
  };
}

export interface CheckDatabaseLoginInput {
  /** The web node to log in from. */
  server: Server;
  dbServer: Server;
  site: Pick<Site, 'domain'>;
}

/**
 * Logs in to the site's database from a web node with the site's credentials, as the site will (`SELECT 1`).
 * The password reaches the node's mysql client as an option file on stdin. Returns `{ ok, detail }`.
 */
export async function checkDatabaseLogin(
  input: CheckDatabaseLoginInput,
): Promise<{ server: string; ok: boolean; detail: string }> {
  const signal = activityCancellationSignal();
  const web = parseInput(serverSchema, input.server, 'server');
  const { server: db, domain, database, user } = parseRef({ dbServer: input.dbServer, site: input.site });
  const password = await dbPasswordFor(domain);
  const host = db.address ?? db.host;
  const r = await runRemote(
    web,
    [
      'mysql',
      '--defaults-extra-file=/dev/stdin',
      '--batch',
      '--skip-column-names',
      `--host=${host}`,
      `--port=${dbServiceOf(db).port}`,
      `--user=${user}`,
      `--database=${database}`,
      '--execute=SELECT 1',
    ],
    { timeoutMs: 30_000, stdin: `[client]\npassword=${password}\n`, signal, allowExitCodes: 'any' },
  );
  const ok = r.code === 0 && r.stdout.trim() === '1';
  const detail = ok
    ? `${user}@${host}/${database}: login from ${web.name} works`
    : `${user}@${host}/${database} from ${web.name}: ${`${r.stderr}${r.stdout}`.split(password).join('***').trim()}`;
  return { server: web.name, ok, detail };
}
