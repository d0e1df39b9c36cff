/**
 * A site's directory on a code receiver: `PLATFORM/sites/DOMAIN` with `files/` and `private/` writable by the web
 * server, alias symlinks next to it (Aegir's way of serving aliases), and the settings file holding the database
 * credentials — rendered and written here, on the worker, so the password never leaves it.
 */
import { absolutePath } from '../domain/fields';
import { platformSchema, serverSchema, siteSchema, type Platform, type Server, type Site } from '../domain/model';
import { backupsDir, platformRoot, siteDir, sitesDir } from '../domain/paths';
import { activityCancellationSignal } from './support/activity-context';
import { siteDatabaseName, siteDatabaseUser } from './database';
import { parseInput } from './support/activity-input';
import { badInput, FailureType, permanentFailure } from '../common/failures';
import { ensureRemoteFiles, type RemoteFileSpec, writeRemoteFile } from './transport/remote-file';
import { renderSiteSettings, renderWordpressDispatcher, renderWordpressHealth, siteSettingsFileName } from './render';
import { WORDPRESS_HEALTH_PATH } from '../domain/site-probe';
import { dbPasswordFor, siteSaltsFor } from './site-secrets';
import { runRemote } from './transport/ssh-command';

/** The group the web server and php-fpm run as (Debian). Uploads and settings are readable by it. */
export const WEB_GROUP = 'www-data';

/** @default 2 minutes (a backup of a big files/ directory takes a while) */
const SITE_DIR_TIMEOUT_MS = 120_000;

/**
 * Creates the site directory and files/ private/ with their owners and modes, makes the alias symlinks point at
 * it (and removes aliases that no longer belong to the site). Prints `changed` when it touched anything.
 */
const SITE_DIR_SCRIPT = `set -eu
sites=$1 domain=$2 owner=$3 group=$4 uploads=$5 mounted=$6
shift 6
dir="$sites/$domain"
state() { stat -c '%U:%G:%a:%F' -- "$dir" "$dir/files" "$dir/private" 2>/dev/null || true; }
before=$(state)
[ -d "$sites" ] || install -d -o "$owner" -g "$owner" -m 0755 -- "$sites"
install -d -o "$owner" -g "$owner" -m 0755 -- "$dir"
chown -- "$owner:$owner" "$dir"; chmod 0755 -- "$dir"
if [ -z "$uploads" ]; then
  install -d -o "$owner" -g "$group" -m 2770 -- "$dir/files" "$dir/private"
  chown -- "$owner:$group" "$dir/files" "$dir/private"; chmod 2770 -- "$dir/files" "$dir/private"
else
  # Shared uploads: files/ and private/ are links into the cluster's share, never local directories.
  if [ "$mounted" = yes ] && ! timeout -k 1 10 mountpoint -q -- "$uploads"; then
    echo "the cluster's uploads share is not mounted at $uploads: set up the uploads share (sitefleet cluster setup-uploads) first" >&2; exit 4
  fi
  for sub in files private; do
    target="$uploads/$domain/$sub"
    timeout -k 1 10 test -d "$target" || { echo "$target is not a directory on the uploads share" >&2; exit 5; }
    [ "$(readlink -- "$dir/$sub" 2>/dev/null || true)" = "$target" ] && continue
    if [ -L "$dir/$sub" ]; then rm -f -- "$dir/$sub"
    elif [ -d "$dir/$sub" ]; then
      # Uploads this member kept locally move onto the share (existing files there win), then the directory goes.
      cp -R -n --preserve=timestamps -- "$dir/$sub/." "$target/"
      rm -rf -- "$dir/$sub"
    elif [ -e "$dir/$sub" ]; then echo "$dir/$sub exists and is neither a directory nor a link" >&2; exit 3
    fi
    ln -s -- "$target" "$dir/$sub"; chown -h -- "$owner:$owner" "$dir/$sub"
  done
fi
changed=no
[ "$before" = "$(state)" ] || changed=yes
for alias in "$@"; do
  if [ "$(readlink -- "$sites/$alias" 2>/dev/null || true)" != "$domain" ]; then
    if [ -e "$sites/$alias" ] && [ ! -L "$sites/$alias" ]; then echo "$sites/$alias exists and is not an alias link" >&2; exit 3; fi
    ln -sfn -- "$domain" "$sites/$alias"; chown -h -- "$owner:$owner" "$sites/$alias"; changed=yes
  fi
done
for link in "$sites"/*; do
  [ -L "$link" ] || continue
  [ "$(readlink -- "$link")" = "$domain" ] || continue
  name=\${link##*/} keep=no
  for alias in "$@"; do [ "$alias" = "$name" ] && keep=yes; done
  [ "$keep" = yes ] || { rm -f -- "$link"; changed=yes; }
done
echo "changed=$changed"
`;

/** Backs the site directory up as a tarball (when it exists), then removes it and its alias links. */
const REMOVE_SITE_SCRIPT = `set -eu
sites=$1 domain=$2 backup=$3
dir="$sites/$domain"
for link in "$sites"/*; do
  if [ -L "$link" ] && [ "$(readlink -- "$link")" = "$domain" ]; then rm -f -- "$link"; fi
done
[ -d "$dir" ] || { echo removed=no; exit 0; }
if [ -n "$backup" ]; then
  mkdir -p -- "\${backup%/*}"
  tar -czf "$backup.tmp" -C "$sites" -- "$domain"
  mv -f -- "$backup.tmp" "$backup"
  echo "backup=$backup"
fi
rm -rf -- "$dir"
echo removed=yes
`;

function checkProfileNeedsDb(site: Site, platform: Platform, dbServer: Server | undefined): Server | undefined {
  if (siteSettingsFileName(platform.profile) === null) return undefined;
  if (!dbServer) throw badInput(`site ${site.domain}: a ${platform.profile} site needs a database server`);
  const parsed = parseInput(serverSchema, dbServer, 'dbServer');
  if (!parsed.db) throw badInput(`dbServer: server ${parsed.name} has no db service`);
  return parsed;
}

/**
 * sitefleet's two files at the root of a WordPress platform: wp-config.php, which picks a site's config by HTTP
 * host, and the health script that verification asks on every node (domain/site-probe.ts). The platform rsync
 * excludes both, so a code push neither overwrites nor deletes them. Both written at once; idempotent. Returns
 * whether either changed (false for other profiles).
 */
export async function ensureWordpressDispatcher(
  server: Server,
  platform: Platform,
  signal?: AbortSignal,
): Promise<boolean> {
  const files = platformOwnFiles(server, platform);
  if (files.length === 0) return false;
  return (await ensureRemoteFiles(server, files, { signal })).some(Boolean);
}

/**
 * sitefleet's own files at the root of a platform on a server (WordPress: dispatcher and health script), or at
 * `root` (a release directory being built).
 */
export function platformOwnFiles(
  server: Server,
  platform: Platform,
  root = platformRoot(server, platform.name),
): RemoteFileSpec[] {
  if (platform.profile !== 'wordpress') return [];
  const owner = server.aegirUser;
  return [
    { path: `${root}/wp-config.php`, content: renderWordpressDispatcher(platform), owner, mode: '0644' },
    { path: `${root}${WORDPRESS_HEALTH_PATH}`, content: renderWordpressHealth(platform), owner, mode: '0644' },
  ];
}

export interface EnsureSiteDirInput {
  server: Server;
  site: Site;
  platform: Platform;
  /** Required for profiles with a database (wordpress, drupal, php). */
  dbServer?: Server;
  /**
   * A cluster's shared uploads as this server sees them (activities/cluster-uploads.ts uploadsRootOn): files/ and
   * private/ become links to `ROOT/DOMAIN/files` and `ROOT/DOMAIN/private`; with `mounted`, ROOT must be a mount
   * point, else the activity refuses (uploads never go to a local directory). Absent: local directories.
   */
  uploads?: { root: string; mounted: boolean };
}

export interface EnsureSiteDirResult {
  server: string;
  path: string;
  /** The settings file written, or null for static sites. */
  settingsFile: string | null;
  changed: boolean;
}

/**
 * Creates the site directory (owned by the aegir user; files/ and private/ group-writable by the web server) and
 * writes its settings file (0440, aegir:www-data) with the database name, user, derived password and host.
 * Idempotent: a second run changes nothing and reports `changed: false`.
 */
export async function ensureSiteDir(input: EnsureSiteDirInput): Promise<EnsureSiteDirResult> {
  const signal = activityCancellationSignal();
  const server = parseInput(serverSchema, input.server, 'server');
  const site = parseInput(siteSchema, input.site, 'site');
  const platform = parseInput(platformSchema, input.platform, 'platform');
  const dbServer = checkProfileNeedsDb(site, platform, input.dbServer);
  const uploads =
    input.uploads === undefined
      ? undefined
      : { root: parseInput(absolutePath, input.uploads.root, 'uploads.root'), mounted: input.uploads.mounted === true };
  const root = platformRoot(server, platform.name);
  const hasRoot = await runRemote(server, ['test', '-d', root], { timeoutMs: 30_000, signal, allowExitCodes: [0, 1] });
  if (hasRoot.code !== 0) {
    throw permanentFailure(
      FailureType.BadInput,
      `server ${server.name} has no platform ${platform.name} (${root}): create the platform before its sites`,
    );
  }
  const dir = await runRemote(
    server,
    [
      'sh',
      '-c',
      SITE_DIR_SCRIPT,
      'sitefleet-site-dir',
      sitesDir(server, platform.name),
      site.domain,
      server.aegirUser,
      WEB_GROUP,
      uploads?.root ?? '',
      uploads?.mounted ? 'yes' : 'no',
      ...site.aliases,
    ],
    {
      timeoutMs: SITE_DIR_TIMEOUT_MS,
      signal,
      describe: `create ${siteDir(server, platform.name, site.domain)}`,
      allowExitCodes: [0, 4, 5],
    },
  );
  if (dir.code === 4 || dir.code === 5) {
    throw permanentFailure(FailureType.ServerNotReady, `server ${server.name}: ${dir.stderr.trim()}`);
  }
  let changed = dir.stdout.includes('changed=yes');
  changed = (await ensureWordpressDispatcher(server, platform, signal)) || changed;
  const fileName = siteSettingsFileName(platform.profile);
  let settingsFile: string | null = null;
  if (fileName && dbServer?.db) {
    settingsFile = `${siteDir(server, platform.name, site.domain)}/${fileName}`;
    const content = renderSiteSettings({
      server,
      site,
      platform,
      db: {
        name: siteDatabaseName(site.domain),
        user: siteDatabaseUser(site.domain),
        password: await dbPasswordFor(site.domain),
        host: dbServer.address ?? dbServer.host,
        port: dbServer.db.port,
      },
      salts: await siteSaltsFor(site.domain, platform.profile),
    });
    // The previous content holds the password too: it is deliberately not returned.
    const write = await writeRemoteFile(server, settingsFile, content, {
      owner: server.aegirUser,
      group: WEB_GROUP,
      mode: '0440',
      signal,
    });
    changed ||= write.changed;
  }
  return { server: server.name, path: siteDir(server, platform.name, site.domain), settingsFile, changed };
}

export interface RemoveSiteDirInput {
  server: Server;
  site: Pick<Site, 'domain'>;
  platform: Platform;
  /** Keep a tarball of the directory in Aegir's backups dir before removing it. @default true */
  backup?: boolean;
}

/**
 * Compensation of ensureSiteDir and a step of DeleteSite: backs the site directory up to
 * `BACKUPS/DOMAIN-TIMESTAMP.tar.gz`, then removes it and its alias links. Idempotent.
 */
export async function removeSiteDir(
  input: RemoveSiteDirInput,
): Promise<{ server: string; removed: boolean; backupPath: string | null }> {
  const signal = activityCancellationSignal();
  const server = parseInput(serverSchema, input.server, 'server');
  const { domain } = parseInput(siteSchema.pick({ domain: true }), { domain: input.site.domain }, 'site');
  const platform = parseInput(platformSchema, input.platform, 'platform');
  const stamp = new Date()
    .toISOString()
    .replace(/[-:]/g, '')
    .replace(/\.\d+Z$/, 'Z');
  const backup = input.backup === false ? '' : `${backupsDir(server)}/${domain}-${stamp}.tar.gz`;
  const r = await runRemote(
    server,
    ['sh', '-c', REMOVE_SITE_SCRIPT, 'sitefleet-remove-site', sitesDir(server, platform.name), domain, backup],
    { timeoutMs: SITE_DIR_TIMEOUT_MS, signal, describe: `remove ${siteDir(server, platform.name, domain)}` },
  );
  const backupPath = /^backup=(.*)$/m.exec(r.stdout)?.[1] ?? null;
  return { server: server.name, removed: r.stdout.includes('removed=yes'), backupPath };
}
