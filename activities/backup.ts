/**
 * Site backups in Aegir's backups directory: `DOMAIN-STAMP.tar.gz` holding the site directory (`DOMAIN/`), for a
 * cluster with shared uploads the site's uploads (`uploads.tar`), and, for sites with a database, `database.sql` dumped on the database server and streamed to the web node through this
 * worker (never stored here). Copying a backup between servers and restoring it (files, and the database once)
 * complete BackupSite, RestoreSite and MigrateSite.
 */
import { z } from 'zod';
import { platformSchema, serverSchema, siteSchema, type Platform, type Server, type Site } from '../domain/model';
import { backupsDir, sitesDir } from '../domain/paths';
import { absolutePath } from '../domain/fields';
import { activityCancellationSignal, withHeartbeat } from './support/activity-context';
import { parseInput } from './support/activity-input';
import { siteDatabaseName, sqlIdentifier } from './database';
import { badInput, FailureType, permanentFailure, transientFailure } from '../common/failures';
import { pipeRemote, runRemote } from './transport/ssh-command';

/** @default 2 hours: big sites take a while to dump, pack and copy. */
const BACKUP_TIMEOUT_MS = 2 * 60 * 60_000;

const stampSchema = z.string().regex(/^\d{8}T\d{6}Z$/, 'must be a UTC stamp such as 20261126T140000Z');
const backupNameSchema = z
  .string()
  .regex(
    /^[a-z0-9][a-z0-9.-]{0,252}-\d{8}T\d{6}Z\.tar\.gz$/,
    'must be a backup file name such as example.com-20261126T140000Z.tar.gz',
  );

function backupPath(server: Server, name: string): string {
  return `${backupsDir(server)}/${name}`;
}

/** The backup file name of a site at a stamp. */
export function backupFileName(domain: string, stamp: string): string {
  const { domain: d } = parseInput(siteSchema.pick({ domain: true }), { domain }, 'site domain');
  return `${d}-${parseInput(stampSchema, stamp, 'stamp')}.tar.gz`;
}

function backupNameFor(domain: string, name: string): string {
  const parsed = parseInput(backupNameSchema, name, 'backup');
  if (!parsed.startsWith(`${domain}-`)) throw badInput(`backup ${parsed} is not a backup of ${domain}`);
  return parsed;
}

async function sizeOf(server: Server, path: string, signal?: AbortSignal): Promise<number | null> {
  const r = await runRemote(server, ['stat', '-c', '%s', '--', path], {
    timeoutMs: 30_000,
    signal,
    allowExitCodes: [0, 1],
  });
  return r.code === 0 ? Number(r.stdout.trim()) : null;
}

function dbServiceOf(server: Server | undefined): Server | undefined {
  if (server === undefined) return undefined;
  const parsed = parseInput(serverSchema, server, 'dbServer');
  if (!parsed.db) throw badInput(`dbServer: server ${parsed.name} has no db service`);
  return parsed;
}

export interface BackupSiteInput {
  /** The code receiver holding the site directory; the backup is written there. */
  server: Server;
  site: Site;
  platform: Platform;
  dbServer?: Server;
  /** UTC stamp of the backup (the workflow's start time): the same on every retry, so a retry finds its backup. */
  stamp: string;
  /**
   * The cluster's shared uploads as this server sees them (workflows/group.ts siteUploads): the site's files/ and
   * private/ there go into the backup as `uploads.tar`. Absent: they are directories in the site directory.
   */
  uploads?: SiteUploadsRoot;
}

/** Where a server sees a cluster's shared uploads: the root holds a directory per site. */
export interface SiteUploadsRoot {
  root: string;
  /** The root must be a mount point (a member), not the export itself (the files server). */
  mounted: boolean;
}

function parseUploads(uploads: SiteUploadsRoot | undefined): SiteUploadsRoot | undefined {
  if (uploads === undefined) return undefined;
  return { root: parseInput(absolutePath, uploads.root, 'uploads.root'), mounted: uploads.mounted === true };
}

export interface BackupResult {
  server: string;
  /** The file name under the server's backups directory. */
  backup: string;
  path: string;
  bytes: number;
}

const PACK_SCRIPT = `set -eu
sites=$1 domain=$2 work=$3 out=$4 uploads=$5 mounted=$6
[ -d "$sites/$domain" ] || { echo "no site directory $sites/$domain" >&2; exit 3; }
extra=""
if [ -n "$uploads" ]; then
  # Shared uploads: the site's directory on the share, packed on its own (the site directory holds only links).
  if [ "$mounted" = yes ] && ! timeout -k 1 10 mountpoint -q -- "$uploads"; then
    echo "the cluster's uploads share is not mounted at $uploads: the uploads cannot be backed up" >&2; exit 4
  fi
  [ -d "$uploads/$domain" ] || { echo "no uploads directory $uploads/$domain on the share" >&2; exit 4; }
  # Uploads change while sites serve: a file added or removed during the pack is a warning (exit 1), not a failure.
  rc=0
  tar --warning=no-file-changed --warning=no-file-removed -cf "$work/uploads.tar" -C "$uploads" "$domain" || rc=$?
  [ "$rc" -le 1 ] || exit "$rc"
  extra="uploads.tar"
fi
[ ! -f "$work/database.sql" ] || extra="$extra database.sql"
if [ -n "$extra" ]; then
  # $extra is a list of fixed names, split on purpose.
  tar -czf "$work/backup.tar.gz" -C "$sites" "$domain" -C "$work" $extra
else
  tar -czf "$work/backup.tar.gz" -C "$sites" "$domain"
fi
chmod 0600 "$work/backup.tar.gz"
mv -f -- "$work/backup.tar.gz" "$out"
rm -rf -- "$work"
`;

/**
 * Writes `DOMAIN-STAMP.tar.gz` (site directory, database dump) to the server's backups directory, atomically.
 * Idempotent: a backup already complete under that name is returned as it is.
 */
export async function backupSite(input: BackupSiteInput): Promise<BackupResult> {
  const signal = activityCancellationSignal();
  const server = parseInput(serverSchema, input.server, 'server');
  const site = parseInput(siteSchema, input.site, 'site');
  const platform = parseInput(platformSchema, input.platform, 'platform');
  const db = dbServiceOf(input.dbServer);
  const uploads = parseUploads(input.uploads);
  const name = backupFileName(site.domain, input.stamp);
  const path = backupPath(server, name);
  const done = await sizeOf(server, path, signal);
  if (done !== null) return { server: server.name, backup: name, path, bytes: done };
  const work = `${backupsDir(server)}/.${name}.work`;
  let dumped = 0;
  return withHeartbeat(
    () => ({ server: server.name, backup: name, dumped }),
    async () => {
      await runRemote(server, ['sh', '-c', 'rm -rf -- "$1" && mkdir -p -m 0700 -- "$1"', 'sitefleet-work', work], {
        timeoutMs: 60_000,
        signal,
      });
      if (db) {
        const dump = await pipeRemote(
          {
            server: db,
            argv: [
              'mysqldump',
              '--single-transaction',
              '--quick',
              '--routines',
              '--triggers',
              '--default-character-set=utf8mb4',
              siteDatabaseName(site.domain),
            ],
          },
          { server, argv: ['sh', '-c', 'cat > "$1"', 'sitefleet-dump', `${work}/database.sql`] },
          { timeoutMs: BACKUP_TIMEOUT_MS, signal, onProgress: (bytes) => (dumped = bytes) },
        );
        if (dump.from.code !== 0 || dump.to.code !== 0) {
          throw transientFailure(
            FailureType.DatabaseFailed,
            `backup of ${site.domain}: dumping its database on ${db.name} into ${server.name} failed: ${dump.from.stderr.trim() || dump.to.stderr.trim()}`,
          );
        }
      }
      const packed = await runRemote(
        server,
        [
          'sh',
          '-c',
          PACK_SCRIPT,
          'sitefleet-backup',
          sitesDir(server, platform.name),
          site.domain,
          work,
          path,
          uploads?.root ?? '',
          uploads?.mounted ? 'yes' : 'no',
        ],
        { timeoutMs: BACKUP_TIMEOUT_MS, signal, allowExitCodes: [0, 3, 4], describe: `pack ${path}` },
      );
      if (packed.code === 3) {
        throw permanentFailure(
          FailureType.BadInput,
          `server ${server.name}: ${packed.stderr.trim()}; nothing to back up for ${site.domain}`,
        );
      }
      if (packed.code === 4) {
        // A share that is down may come back: retried, and never a backup without the uploads.
        throw transientFailure(FailureType.ShareNotVisible, `server ${server.name}: ${packed.stderr.trim()}`);
      }
      return { server: server.name, backup: name, path, bytes: (await sizeOf(server, path, signal)) ?? 0 };
    },
  );
}

export interface CopyBackupInput {
  from: Server;
  to: Server;
  domain: string;
  /** The backup file name (as backupSite returned it). */
  backup: string;
}

/**
 * Copies a backup from one server's backups directory to another's, streamed through this worker and checked
 * by sha256 before it is put in place. Idempotent: an identical copy already there is left alone.
 */
export async function copyBackup(
  input: CopyBackupInput,
): Promise<{ server: string; backup: string; bytes: number; copied: boolean }> {
  const signal = activityCancellationSignal();
  const from = parseInput(serverSchema, input.from, 'from');
  const to = parseInput(serverSchema, input.to, 'to');
  const { domain } = parseInput(siteSchema.pick({ domain: true }), { domain: input.domain }, 'domain');
  const name = backupNameFor(domain, input.backup);
  const source = backupPath(from, name);
  const target = backupPath(to, name);
  const digest = async (server: Server, path: string): Promise<string | null> => {
    const r = await runRemote(server, ['sh', '-c', '[ -f "$1" ] || exit 3; sha256sum < "$1"', 'sitefleet-sum', path], {
      timeoutMs: BACKUP_TIMEOUT_MS,
      signal,
      allowExitCodes: [0, 3],
    });
    return r.code === 0 ? (r.stdout.split(' ')[0] ?? null) : null;
  };
  const [want, have] = await Promise.all([digest(from, source), digest(to, target)]);
  if (want === null) throw permanentFailure(FailureType.BadInput, `server ${from.name} has no backup ${source}`);
  if (have === want)
    return { server: to.name, backup: name, bytes: (await sizeOf(to, target, signal)) ?? 0, copied: false };
  let sent = 0;
  return withHeartbeat(
    () => ({ from: from.name, to: to.name, backup: name, sent }),
    async () => {
      const copy = await pipeRemote(
        { server: from, argv: ['cat', '--', source] },
        {
          server: to,
          argv: ['sh', '-c', 'mkdir -p -- "${1%/*}" && umask 077 && cat > "$1.part"', 'sitefleet-receive', target],
        },
        { timeoutMs: BACKUP_TIMEOUT_MS, signal, onProgress: (bytes) => (sent = bytes) },
      );
      if (copy.from.code !== 0 || copy.to.code !== 0) {
        throw transientFailure(
          FailureType.RemoteCommandFailed,
          `copying ${name} from ${from.name} to ${to.name} failed: ${copy.from.stderr || copy.to.stderr}`,
        );
      }
      const commit = await runRemote(
        to,
        [
          'sh',
          '-c',
          '[ "$(sha256sum < "$1.part" | cut -d" " -f1)" = "$2" ] || { rm -f -- "$1.part"; exit 3; }; mv -f -- "$1.part" "$1"',
          'sitefleet-commit',
          target,
          want,
        ],
        { timeoutMs: BACKUP_TIMEOUT_MS, signal, allowExitCodes: [0, 3] },
      );
      if (commit.code === 3)
        throw transientFailure(
          FailureType.RemoteCommandFailed,
          `the copy of ${name} on ${to.name} does not match the original`,
        );
      return { server: to.name, backup: name, bytes: copy.bytes, copied: true };
    },
  );
}

export interface RestoreSiteBackupInput {
  server: Server;
  site: Site;
  platform: Platform;
  dbServer?: Server;
  backup: string;
  /** Load the backup's database dump too (once per restore, on one server). */
  restoreDatabase: boolean;
  /** The cluster's shared uploads as this server sees them; absent: files/ and private/ are local directories. */
  uploads?: SiteUploadsRoot;
  /** Put the backup's uploads onto the share (once per restore, on one server that sees it). @default false */
  restoreUploads?: boolean;
}

/**
 * Swaps the site directory for the backup's copy: unpacked next to it first, then renamed into place. The
 * uploads (files/ and private/) come from the backup's uploads.tar (a site on shared uploads) or from its site
 * directory (a site with local ones), so a backup restores onto a cluster with or without shared uploads:
 * - without: files/ and private/ become directories again;
 * - with: they become links into the share, and with restore_uploads=yes the site's directory on the share is
 *   swapped for the backup's (what the backup does not hold is gone; the caller's safety backup keeps it).
 */
const UNPACK_SCRIPT = `set -eu
backup=$1 sites=$2 domain=$3 uploads=$4 mounted=$5 restore_uploads=$6
[ -f "$backup" ] || { echo "no backup $backup" >&2; exit 3; }
[ -d "$sites" ] || { echo "no sites directory $sites (is the platform there?)" >&2; exit 3; }
if [ -n "$uploads" ] && [ "$mounted" = yes ] && ! timeout -k 1 10 mountpoint -q -- "$uploads"; then
  echo "the cluster's uploads share is not mounted at $uploads: the site cannot be restored" >&2; exit 4
fi
tmp=$(mktemp -d -- "$sites/.restore-$domain.XXXXXX")
stage=""
trap 'rm -rf -- "$tmp"; [ -z "$stage" ] || rm -rf -- "$stage"' EXIT
tar -xzf "$backup" -C "$tmp" -- "$domain"
site="$tmp/$domain"
mkdir -- "$tmp/uploads"
if tar -tzf "$backup" uploads.tar >/dev/null 2>&1; then
  tar -xzOf "$backup" uploads.tar | tar -xf - -C "$tmp/uploads"
else
  mkdir -- "$tmp/uploads/$domain"
  for sub in files private; do
    if [ -d "$site/$sub" ] && [ ! -L "$site/$sub" ]; then mv -- "$site/$sub" "$tmp/uploads/$domain/$sub"; fi
  done
fi
saved="$tmp/uploads/$domain"
if [ -n "$uploads" ] && [ "$restore_uploads" = yes ]; then
  stage=$(mktemp -d -- "$uploads/.restore-$domain.XXXXXX")
  cp -R --preserve=mode,ownership,timestamps -- "$saved" "$stage/$domain"
  [ ! -e "$uploads/$domain" ] || mv -- "$uploads/$domain" "$stage/previous"
  mv -- "$stage/$domain" "$uploads/$domain"
fi
for sub in files private; do
  rm -rf -- "$site/$sub"
  if [ -n "$uploads" ]; then
    ln -s -- "$uploads/$domain/$sub" "$site/$sub"
    chown -h --reference="$site" -- "$site/$sub"
  elif [ -d "$saved/$sub" ]; then
    mv -- "$saved/$sub" "$site/$sub"
  fi
done
[ ! -d "$sites/$domain" ] || mv -- "$sites/$domain" "$tmp/previous"
mv -- "$site" "$sites/$domain"
`;

/**
 * Restores a backup on one server: the site directory (replaced as a whole), and with `restoreDatabase` the
 * database (dropped, re-created and loaded from the dump, streamed from this server to the database server).
 * Idempotent: restoring the same backup again gives the same state.
 */
export async function restoreSiteBackup(
  input: RestoreSiteBackupInput,
): Promise<{ server: string; backup: string; restored: string; restoredFiles: boolean; restoredDatabase: boolean }> {
  const signal = activityCancellationSignal();
  const server = parseInput(serverSchema, input.server, 'server');
  const site = parseInput(siteSchema, input.site, 'site');
  const platform = parseInput(platformSchema, input.platform, 'platform');
  const db = dbServiceOf(input.dbServer);
  const uploads = parseUploads(input.uploads);
  const name = backupNameFor(site.domain, input.backup);
  const path = backupPath(server, name);
  return withHeartbeat(
    () => ({ server: server.name, backup: name }),
    async () => {
      const unpacked = await runRemote(
        server,
        [
          'sh',
          '-c',
          UNPACK_SCRIPT,
          'sitefleet-restore',
          path,
          sitesDir(server, platform.name),
          site.domain,
          uploads?.root ?? '',
          uploads?.mounted ? 'yes' : 'no',
          uploads && input.restoreUploads === true ? 'yes' : 'no',
        ],
        { timeoutMs: BACKUP_TIMEOUT_MS, signal, allowExitCodes: [0, 3, 4], describe: `restore ${path}` },
      );
      if (unpacked.code === 3)
        throw permanentFailure(FailureType.BadInput, `server ${server.name}: ${unpacked.stderr.trim()}`);
      if (unpacked.code === 4)
        throw transientFailure(FailureType.ShareNotVisible, `server ${server.name}: ${unpacked.stderr.trim()}`);
      let restoredDatabase = false;
      if (input.restoreDatabase && db) {
        // Check the dump is there before anything drops the database.
        const listed = await runRemote(server, ['tar', '-tzf', path, 'database.sql'], {
          timeoutMs: BACKUP_TIMEOUT_MS,
          signal,
          allowExitCodes: 'any',
        });
        if (listed.code !== 0) {
          throw permanentFailure(
            FailureType.BadInput,
            `backup ${name} on ${server.name} has no database dump (database.sql); the database was left as it is`,
          );
        }
        const database = sqlIdentifier(siteDatabaseName(site.domain));
        const preamble = `DROP DATABASE IF EXISTS ${database}; CREATE DATABASE ${database} CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci; USE ${database};`;
        const load = await pipeRemote(
          { server, argv: ['tar', '-xzOf', path, 'database.sql'] },
          {
            server: db,
            argv: [
              'sh',
              '-c',
              '{ printf "%s\\n" "$1"; cat; } | mysql --batch --default-character-set=utf8mb4',
              'sitefleet-load',
              preamble,
            ],
          },
          { timeoutMs: BACKUP_TIMEOUT_MS, signal },
        );
        if (load.from.code !== 0) {
          throw permanentFailure(
            FailureType.BadInput,
            `backup ${name} on ${server.name} has no database dump: ${load.from.stderr.trim()}`,
          );
        }
        if (load.to.code !== 0) {
          throw transientFailure(
            FailureType.DatabaseFailed,
            `loading ${name} into ${db.name} failed: ${load.to.stderr.trim()}`,
          );
        }
        restoredDatabase = true;
      }
      return { server: server.name, backup: name, restored: name, restoredFiles: true, restoredDatabase };
    },
  );
}
