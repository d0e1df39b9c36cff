/**
 * A cluster's shared uploads: one share (exported by a files server, mounted on every member at
 * `<aegirRoot>/shared/<cluster>`) holds one directory per site, `DOMAIN/files` and `DOMAIN/private`. On each member a
 * site's `sites/DOMAIN/files` and `private` are symlinks into it (activities/site-files.ts), so an upload through
 * one member is seen through every other, and no code push (rsync --delete) can reach it.
 *
 * Ownership: the directories are the aegir user's, group www-data, mode 2770 (setgid: what php-fpm creates in them
 * stays in the web group). Through sshfs every write lands on the files server as the aegir user, whichever local
 * user (php-fpm's www-data) wrote it; the mount's `default_permissions` checks the local user against the
 * server's numeric ids, which is why the aegir uid:gid and the www-data gid must be equal everywhere.
 */
import { domainName } from '../domain/fields';
import { serverSchema, type Server } from '../domain/model';
import type { PackShare } from '../domain/operations';
import { z } from 'zod';
import { activityCancellationSignal, boundHeartbeat } from './support/activity-context';
import { parseInput } from './support/activity-input';
import { FailureType, permanentFailure } from '../common/failures';
import { parseShare } from './nfs-share';
import { WEB_GROUP } from './site-files';
import { runRemote } from './transport/ssh-command';

export interface UploadIds {
  server: string;
  uid: number;
  gid: number;
  webGid: number;
}

/** The aegir uid:gid and the www-data gid of a server (the uploads need them equal on every member and the files server). */
export async function readUploadIds(input: { server: Server }): Promise<UploadIds> {
  const signal = activityCancellationSignal();
  const server = parseInput(serverSchema, input.server, 'server');
  const r = await runRemote(
    server,
    [
      'sh',
      '-c',
      'printf "%s %s %s\\n" "$(id -u -- "$1")" "$(id -g -- "$1")" "$(getent group "$2" | cut -d: -f3)"',
      'sitefleet-ids',
      server.aegirUser,
      WEB_GROUP,
    ],
    { timeoutMs: 30_000, signal },
  );
  const [uid, gid, webGid] = r.stdout.trim().split(' ').map(Number);
  if (
    ![uid, gid, webGid].every((n) => Number.isInteger(n) && (n as number) >= 0) ||
    r.stdout.trim().split(' ').length !== 3
  ) {
    throw permanentFailure(
      FailureType.ServerNotReady,
      `server ${server.name}: needs the user ${server.aegirUser} and the group ${WEB_GROUP} (read "${r.stdout.trim()}")`,
    );
  }
  return { server: server.name, uid: uid as number, gid: gid as number, webGid: webGid as number };
}

/** Ensures `DOMAIN/{files,private}` for each domain given; prints `changed=DOMAIN` for each one it touched. */
const SITE_UPLOADS_SCRIPT = `set -eu
export=$1 owner=$2 group=$3
shift 3
[ -d "$export" ] || { echo "$export does not exist: set up the cluster's uploads share first" >&2; exit 3; }
state() { stat -c '%U:%G:%a' -- "$dir" "$dir/files" "$dir/private" 2>/dev/null || true; }
for domain in "$@"; do
  dir="$export/$domain"
  before=$(state)
  install -d -o "$owner" -g "$group" -m 2750 -- "$dir"
  install -d -o "$owner" -g "$group" -m 2770 -- "$dir/files" "$dir/private"
  chown -- "$owner:$group" "$dir" "$dir/files" "$dir/private"
  chmod 2750 -- "$dir"; chmod 2770 -- "$dir/files" "$dir/private"
  [ "$before" = "$(state)" ] || echo "changed=$domain"
done
`;

/** Sites whose uploads directories one ssh command ensures (a batch heartbeats between them). */
const UPLOADS_PER_COMMAND = 100;

/**
 * Creates a site's directory in the uploads export on the files server: `DOMAIN/` (aegir:www-data 2750) with
 * `files/` and `private/` (2770). Existing uploads are kept; idempotent. Never removes anything: the uploads of a
 * site outlive its removal from a member (DeleteSite keeps them on the files server).
 */
export async function ensureSiteUploads(input: {
  share: PackShare;
  domain: string;
}): Promise<{ server: string; path: string; changed: boolean }> {
  const share = parseShare(input.share);
  const domain = parseInput(domainName, input.domain, 'domain');
  const changed = await ensureUploadDirs(share, [domain]);
  return { server: share.server.name, path: `${share.exportPath}/${domain}`, changed: changed.length > 0 };
}

/**
 * ensureSiteUploads for many sites: a few ssh commands instead of one per site (AddClusterMember's batch).
 * Heartbeats between commands. Returns the domains whose directories were created or fixed.
 */
export async function ensureUploadsOnServer(input: {
  share: PackShare;
  domains: string[];
}): Promise<{ server: string; sites: number; changed: string[] }> {
  const share = parseShare(input.share);
  const domains = parseInput(z.array(domainName), input.domains, 'domains');
  const heartbeat = boundHeartbeat();
  const changed: string[] = [];
  for (let i = 0; i < domains.length; i += UPLOADS_PER_COMMAND) {
    heartbeat({ server: share.server.name, done: i, of: domains.length });
    changed.push(...(await ensureUploadDirs(share, domains.slice(i, i + UPLOADS_PER_COMMAND))));
  }
  return { server: share.server.name, sites: domains.length, changed };
}

async function ensureUploadDirs(share: PackShare, domains: string[]): Promise<string[]> {
  const signal = activityCancellationSignal();
  const r = await runRemote(
    share.server,
    [
      'sh',
      '-c',
      SITE_UPLOADS_SCRIPT,
      'sitefleet-site-uploads',
      share.exportPath,
      share.server.aegirUser,
      WEB_GROUP,
      ...domains,
    ],
    { timeoutMs: 60_000, signal, allowExitCodes: [0, 3] },
  );
  if (r.code === 3) {
    throw permanentFailure(FailureType.ServerNotReady, `files server ${share.server.name}: ${r.stderr.trim()}`);
  }
  return [...r.stdout.matchAll(/^changed=(.+)$/gm)].map((m) => m[1] as string);
}
