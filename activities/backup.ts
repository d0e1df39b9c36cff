/**
 * Site backups in Aegir's layout: `BACKUPS/DOMAIN-STAMP.tar.gz` on the site's first code receiver, holding the
 * site directory and a dump of its database (`database.sql`). Backups hold the settings file, so they are 0600.
 */
import { z } from 'zod';
import { domainName } from '../domain/fields';
import { platformSchema, serverSchema, siteSchema, type Server } from '../domain/model';
import { backupsDir, siteDir, sitesDir } from '../domain/paths';
import { activityCancellationSignal, heartbeatProgress } from './activity-context';
import { parseInput } from './activity-input';
import { siteDatabaseName, sqlIdentifier } from './database';
import { FailureType, permanentFailure } from './failures';
import { runRemote } from './ssh';

/** @default 30 min: dumps and tarballs of big sites take a while. */
const BACKUP_TIMEOUT_MS = 30 * 60_000;

const stampSchema = z.string().regex(/^\d{8}T\d{6}Z$/, 'must be a UTC stamp such as 20261126T141500Z');

/** The backup file name of a site at a stamp. */
export function backupFileName(domain: string, stamp: string): string {
  return `${parseInput(domainName, domain, 'site domain')}-${parseInput(stampSchema, stamp, 'stamp')}.tar.gz`;
}

function checkBackupName(domain: string, name: string): string {
  const ok = name.startsWith(`${domain}-`) && /^[a-z0-9.-]+-\d{8}T\d{6}Z\.tar\.gz$/.test(name);
  if (!ok)
    throw permanentFailure(
      FailureType.BadInput,
      `backup: "${name}" is not a backup of ${domain} (DOMAIN-STAMP.tar.gz)`,
    );
  return name;
}

/** Dumps a site's database on its server; the dump travels over ssh and never touches argv. */
async function dumpDatabase(dbServer: Server, domain: string, signal?: AbortSignal): Promise<string> {
  const r = await runRemote(
    dbServer,
    ['mysqldump', '--single-transaction', '--skip-dump-date', siteDatabaseName(domain)],
    {
      timeoutMs: BACKUP_TIMEOUT_MS,
      signal,
      describe: `mysqldump of ${domain}`,
    },
  );
  return r.stdout;
}

const backupInput = z.object({
  server: serverSchema,
  site: siteSchema,
  platform: platformSchema,
  dbServer: serverSchema.optional(),
  stamp: stampSchema,
});

/**
 * Writes `BACKUPS/DOMAIN-STAMP.tar.gz` on the server: the site directory plus `database.sql` when the site has a
 * database. Idempotent: a backup that already exists for the stamp is kept and returned.
 */
export async function backupSite(
  input: z.input<typeof backupInput>,
): Promise<{ server: string; backup: string; bytes: number }> {
  const signal = activityCancellationSignal();
  const { server, site, platform, dbServer, stamp } = parseInput(backupInput, input, 'backup');
  const name = backupFileName(site.domain, stamp);
  const dir = backupsDir(server);
  const path = `${dir}/${name}`;
  const existing = await runRemote(server, ['stat', '-c', '%s', path], {
    timeoutMs: 30_000,
    signal,
    allowExitCodes: 'any',
  });
  if (existing.code === 0) return { server: server.name, backup: name, bytes: Number(existing.stdout.trim()) };

  heartbeatProgress({ step: 'dump database' });
  const sql = dbServer ? await dumpDatabase(dbServer, site.domain, signal) : '';
  heartbeatProgress({ step: 'archive' });
  // The dump arrives on stdin; the script stages it beside the site and tars both into a temp file, then renames.
  const script = [
    'set -eu',
    'dir=$1; sites=$2; domain=$3; name=$4; withdb=$5',
    'umask 077',
    'mkdir -p "$dir"',
    'stage=$(mktemp -d "$dir/.stage-XXXXXX")',
    'trap \'rm -rf "$stage"\' EXIT',
    'if [ "$withdb" = yes ]; then cat > "$stage/database.sql"; else cat > /dev/null; : > "$stage/database.sql"; fi',
    'tar -czf "$stage/archive" -C "$sites" "$domain" -C "$stage" database.sql',
    'mv "$stage/archive" "$dir/$name"',
    'stat -c %s "$dir/$name"',
  ].join('\n');
  const r = await runRemote(
    server,
    [
      'sh',
      '-c',
      script,
      'sitefleet-backup',
      dir,
      sitesDir(server, platform.name),
      site.domain,
      name,
      dbServer ? 'yes' : 'no',
    ],
    {
      timeoutMs: BACKUP_TIMEOUT_MS,
      stdin: sql,
      signal,
      describe: `back up ${siteDir(server, platform.name, site.domain)}`,
    },
  );
  return { server: server.name, backup: name, bytes: Number(r.stdout.trim()) };
}

const copyInput = z.object({ from: serverSchema, to: serverSchema, domain: domainName, backup: z.string() });

/** Copies a backup from one server to another through the worker (so members need no ssh access to each other). */
export async function copyBackup(input: z.input<typeof copyInput>): Promise<{ server: string; backup: string }> {
  const signal = activityCancellationSignal();
  const { from, to, domain, backup } = parseInput(copyInput, input, 'copy backup');
  const name = checkBackupName(domain, backup);
  const src = `${backupsDir(from)}/${name}`;
  const encoded = await runRemote(from, ['base64', '-w0', src], {
    timeoutMs: BACKUP_TIMEOUT_MS,
    signal,
    describe: `read ${src}`,
  });
  const dir = backupsDir(to);
  const script = 'set -eu; umask 077; mkdir -p "$1"; base64 -d > "$1/.$2.part"; mv "$1/.$2.part" "$1/$2"';
  await runRemote(to, ['sh', '-c', script, 'sitefleet-copy-backup', dir, name], {
    timeoutMs: BACKUP_TIMEOUT_MS,
    stdin: encoded.stdout,
    signal,
    describe: `write ${dir}/${name}`,
  });
  return { server: to.name, backup: name };
}

const restoreInput = z.object({
  server: serverSchema,
  site: siteSchema,
  platform: platformSchema,
  dbServer: serverSchema.optional(),
  backup: z.string(),
  /** Load the dump into the database (once per operation, not once per member). */
  restoreDatabase: z.boolean(),
});

/**
 * Replaces the site directory with the one in the backup (extracted beside it, then swapped) and, when asked,
 * replaces the database with the dump. Running it again restores the same state.
 */
export async function restoreSiteBackup(
  input: z.input<typeof restoreInput>,
): Promise<{ server: string; restored: string }> {
  const signal = activityCancellationSignal();
  const { server, site, platform, dbServer, backup, restoreDatabase } = parseInput(restoreInput, input, 'restore');
  const name = checkBackupName(site.domain, backup);
  const path = `${backupsDir(server)}/${name}`;
  const script = [
    'set -eu',
    'sites=$1; domain=$2; archive=$3',
    '[ -f "$archive" ] || { echo "no backup $archive" >&2; exit 3; }',
    'stage=$(mktemp -d "$sites/.restore-XXXXXX")',
    'trap \'rm -rf "$stage"\' EXIT',
    'tar -xzf "$archive" -C "$stage"',
    'rm -rf "$sites/.old-$domain"',
    'if [ -e "$sites/$domain" ]; then mv "$sites/$domain" "$sites/.old-$domain"; fi',
    'mv "$stage/$domain" "$sites/$domain"',
    'rm -rf "$sites/.old-$domain"',
  ].join('\n');
  const r = await runRemote(
    server,
    ['sh', '-c', script, 'sitefleet-restore', sitesDir(server, platform.name), site.domain, path],
    {
      timeoutMs: BACKUP_TIMEOUT_MS,
      signal,
      allowExitCodes: 'any',
      describe: `restore ${siteDir(server, platform.name, site.domain)}`,
    },
  );
  if (r.code === 3) throw permanentFailure(FailureType.BadInput, `server ${server.name}: ${r.stderr.trim()}`);
  if (r.code !== 0)
    throw permanentFailure(
      FailureType.RemoteCommandFailed,
      `server ${server.name}: restore failed: ${r.stderr.trim()}`,
    );

  if (restoreDatabase && dbServer) {
    heartbeatProgress({ step: 'restore database' });
    const sql = await runRemote(server, ['tar', '-xzOf', path, 'database.sql'], {
      timeoutMs: BACKUP_TIMEOUT_MS,
      signal,
    });
    const db = sqlIdentifier(siteDatabaseName(site.domain));
    await runRemote(dbServer, ['mysql', '--batch'], {
      timeoutMs: BACKUP_TIMEOUT_MS,
      stdin: `DROP DATABASE IF EXISTS ${db};\nCREATE DATABASE ${db};\nUSE ${db};\n${sql.stdout}`,
      signal,
      describe: `load the database of ${site.domain}`,
    });
  }
  return { server: server.name, restored: name };
}
