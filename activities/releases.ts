/**
 * Release directories of a platform on a cluster member behind a load balancer: the platform root
 * (`platforms/NAME`) is a root-owned link to `releases/NAME/ID`. A new release is a hard-link copy of the current
 * one (site directories, settings and uploads links come along), the new code is synced into it by rsync (which
 * writes each changed file to a temp file and renames it, so the old release's files are never modified), and the
 * link is switched with a rename, so a request sees the old release or the new one, never a mix.
 *
 * The links are root's: rsync 3.5 refuses to follow a destination-root link owned by another user ("untrusted
 * user"), and every command here runs as root (sudo for non-root ssh users, ssh-command.ts).
 */
import { z } from 'zod';
import { platformSchema, serverSchema, type Platform, type Server } from '../domain/model';
import { platformRoot, releaseDir, releasesDir } from '../domain/paths';
import { ADOPTED_RELEASE, RELEASE_ID, releasesToPrune, ROLLED_BACK_SUFFIX } from '../domain/releases';
import { activityCancellationSignal, withHeartbeat } from './support/activity-context';
import { parseInput } from './support/activity-input';
import { FailureType, permanentFailure, transientFailure } from '../common/failures';
import { runRemote, type RemoteCommandOptions, type RemoteCommandResult } from './transport/ssh-command';

export const releaseIdSchema = z
  .string()
  .regex(RELEASE_ID, { message: 'must look like 20261206T181500Z-1a2b3c4d (UTC time, then a short run id)' });

/** Switches LINK to TARGET atomically: a new link under a temporary name, renamed over the old one. */
const SWITCH_LINK = `switch_link() { ln -sfn -- "$1" "$2.sitefleet-link" && mv -T -- "$2.sitefleet-link" "$2"; }`;

/**
 * Exit 3: the layout is not one this module made (the message says why); nothing was changed.
 * Prints `adopted` when the platform directory became release ADOPTED, and `current ID` (empty: no platform yet).
 */
const PREPARE_RELEASE = `set -eu
${SWITCH_LINK}
root=$1 rels=$2 id=$3 adopted=$4
mkdir -p -- "$rels"
chmod 0755 -- "$rels" "$(dirname -- "$rels")"
if [ -d "$root" ] && [ ! -L "$root" ]; then
  [ ! -e "$rels/$adopted" ] || { echo "$rels/$adopted exists already; $root is a directory too" >&2; exit 3; }
  mv -T -- "$root" "$rels/$adopted"
  switch_link "$rels/$adopted" "$root"
  echo adopted
fi
cur=
if [ -L "$root" ]; then
  cur=$(readlink -- "$root")
  case "$cur" in "$rels"/*) ;; *) echo "$root links to $cur, outside $rels" >&2; exit 3 ;; esac
  [ -d "$cur" ] || { echo "$root links to $cur, which does not exist" >&2; exit 3; }
elif [ -e "$root" ]; then
  echo "$root is neither a directory nor a link" >&2; exit 3
fi
echo "current \${cur##*/}"
[ "$cur" != "$rels/$id" ] || exit 0
[ ! -d "$rels/$id" ] || exit 0
rm -rf -- "$rels/$id.partial"
if [ -n "$cur" ]; then cp -al -- "$cur" "$rels/$id.partial"; else mkdir -- "$rels/$id.partial"; fi
mv -T -- "$rels/$id.partial" "$rels/$id"
`;

/**
 * Exit 3 as above. Switches the link to release TO (or removes it when TO is empty: there was no platform before),
 * then renames release DISCARD to DISCARD.rolled-back. Prints `from ID` (the release it linked to before) and
 * `switched` when the link changed; a second run changes nothing. With CARRY=yes, release TO first gets the site
 * directories and alias links of the current release (hard-link copies; its own ones go): sites belong to the
 * platform, not to a release, so a site installed, changed or deleted since TO was made stays so.
 */
const SWITCH_RELEASE = `set -eu
${SWITCH_LINK}
root=$1 rels=$2 to=$3 discard=$4 carry=$5
cur=
if [ -L "$root" ]; then cur=$(readlink -- "$root")
elif [ -e "$root" ]; then echo "$root is not a release link" >&2; exit 3
fi
echo "from \${cur##*/}"
if [ -n "$to" ]; then
  [ -d "$rels/$to" ] || { echo "release $to does not exist in $rels" >&2; exit 3; }
  if [ "$carry" = yes ] && [ -n "$cur" ] && [ "$cur" != "$rels/$to" ] && [ -d "$cur/sites" ]; then
    mkdir -p -- "$rels/$to/sites"
    for d in "$rels/$to"/sites/*.*; do
      if [ -d "$d" ] || [ -L "$d" ]; then rm -rf -- "$d"; fi
    done
    for d in "$cur"/sites/*.*; do
      if [ -d "$d" ] || [ -L "$d" ]; then cp -al -- "$d" "$rels/$to/sites/"; fi
    done
  fi
  if [ "$cur" != "$rels/$to" ]; then switch_link "$rels/$to" "$root"; echo switched; fi
elif [ -n "$cur" ]; then
  rm -f -- "$root"; echo switched
fi
if [ -n "$discard" ] && [ "$discard" != "$to" ] && [ -d "$rels/$discard" ]; then
  rm -rf -- "$rels/$discard${ROLLED_BACK_SUFFIX}"
  mv -T -- "$rels/$discard" "$rels/$discard${ROLLED_BACK_SUFFIX}"
fi
`;

/** Prints `current ID` (empty without a link), then one release directory name a line. */
const LIST_RELEASES = `set -eu
root=$1 rels=$2
cur=
[ ! -L "$root" ] || cur=$(readlink -- "$root")
echo "current \${cur##*/}"
[ ! -d "$rels" ] || find "$rels" -mindepth 1 -maxdepth 1 -type d -printf '%f\\n'
`;

function failOn(server: Server, what: string, r: RemoteCommandResult): never {
  const detail = r.stderr.trim() || r.stdout.trim() || `exit ${r.code}`;
  if (r.code === 3) {
    throw permanentFailure(FailureType.Refused, `server ${server.name}: ${what}: ${detail}; nothing was changed`);
  }
  throw transientFailure(FailureType.RemoteCommandFailed, `server ${server.name}: ${what} failed: ${detail}`);
}

const lineValue = (stdout: string, key: string): string | undefined =>
  stdout
    .split('\n')
    .find((l) => l.startsWith(`${key} `) || l === key)
    ?.slice(key.length + 1)
    .trim();

/** Runs one of the scripts above as root with the platform root and its releases directory as $1 and $2. */
function runReleaseScript(
  server: Server,
  platform: Platform,
  script: string,
  args: string[],
  options: RemoteCommandOptions,
): Promise<RemoteCommandResult> {
  const argv = ['sh', '-c', script, 'sitefleet-releases', platformRoot(server, platform.name)];
  return runRemote(server, [...argv, releasesDir(server, platform.name), ...args], options);
}

function parseTarget(input: { server: Server; platform: Platform }): { server: Server; platform: Platform } {
  return {
    server: parseInput(serverSchema, input.server, 'server'),
    platform: parseInput(platformSchema, input.platform, 'platform'),
  };
}

export interface PrepareReleaseInput {
  server: Server;
  platform: Platform;
  release: string;
}

export interface PrepareReleaseResult {
  server: string;
  release: string;
  /** The release the platform links to now, the one to switch back to; null when the platform did not exist. */
  previous: string | null;
  /** The platform directory became release {@link ADOPTED_RELEASE} (its first rolling update). */
  adopted: boolean;
}

/**
 * Makes release `release` of the platform on the server, ready for its code: a hard-link copy of the current
 * release (empty when there is none). The first time, the platform directory itself becomes a release and the
 * platform root a link to it (the member is drained then). Idempotent: a release that exists is left as it is.
 */
export async function prepareRelease(input: PrepareReleaseInput): Promise<PrepareReleaseResult> {
  const signal = activityCancellationSignal();
  const { server, platform } = parseTarget(input);
  const release = parseInput(releaseIdSchema, input.release, 'release');
  const r = await withHeartbeat(
    () => ({ server: server.name, step: `prepare release ${release} of ${platform.name}` }),
    () =>
      runReleaseScript(server, platform, PREPARE_RELEASE, [release, ADOPTED_RELEASE], {
        timeoutMs: 10 * 60_000,
        signal,
        allowExitCodes: 'any',
        describe: 'prepare a release',
      }),
  );
  if (r.code !== 0) failOn(server, `prepare release ${release} of ${platform.name}`, r);
  return {
    server: server.name,
    release,
    previous: lineValue(r.stdout, 'current') || null,
    adopted: r.stdout.split('\n').includes('adopted'),
  };
}

export interface SwitchReleaseInput {
  server: Server;
  platform: Platform;
  /** The release the platform root links to afterwards; null removes the link (the platform did not exist). */
  to: string | null;
  /** A release to set aside as `ID.rolled-back` once the link points elsewhere (never a rollback target again). */
  discard?: string;
  /**
   * Give release `to` the current release's site directories and alias links before the switch (a rollback to an
   * older release keeps the sites as they are now). @default false
   */
  carrySites?: boolean;
}

/** Points the platform root at release `to` in one rename; a retried or repeated switch changes nothing. */
export async function switchRelease(
  input: SwitchReleaseInput,
): Promise<{ server: string; from: string | null; to: string | null; switched: boolean }> {
  const signal = activityCancellationSignal();
  const { server, platform } = parseTarget(input);
  const to = input.to === null ? null : parseInput(releaseIdSchema, input.to, 'to');
  const discard = input.discard === undefined ? '' : parseInput(releaseIdSchema, input.discard, 'discard');
  const carry = input.carrySites === true ? 'yes' : '';
  const r = await runReleaseScript(server, platform, SWITCH_RELEASE, [to ?? '', discard, carry], {
    timeoutMs: 120_000,
    signal,
    allowExitCodes: 'any',
    describe: 'switch the release link',
  });
  if (r.code !== 0) failOn(server, `switch ${platform.name} to release ${to ?? '(none)'}`, r);
  return {
    server: server.name,
    from: lineValue(r.stdout, 'from') || null,
    to,
    switched: r.stdout.split('\n').includes('switched'),
  };
}

export interface ReleaseListing {
  server: string;
  /** The release the platform root links to; null when it is no link (a directory, or no platform). */
  current: string | null;
  /** Every directory under the platform's releases, sorted (rolled-back ones included). */
  releases: string[];
}

/** The platform's releases on the server and the one it serves. */
export async function listReleases(input: { server: Server; platform: Platform }): Promise<ReleaseListing> {
  const signal = activityCancellationSignal();
  const { server, platform } = parseTarget(input);
  const r = await runReleaseScript(server, platform, LIST_RELEASES, [], { timeoutMs: 30_000, signal });
  const [first = '', ...rest] = r.stdout.split('\n');
  return {
    server: server.name,
    current: first.replace(/^current ?/, '').trim() || null,
    releases: rest
      .map((l) => l.trim())
      .filter(Boolean)
      .sort(),
  };
}

/**
 * Removes the releases a member no longer needs: all but the newest `keep` (the current one always stays) and the
 * newest rolled-back one (domain/releases.ts).
 */
export async function pruneReleases(input: {
  server: Server;
  platform: Platform;
  /** @default 3 */
  keep?: number;
}): Promise<{ server: string; removed: string[] }> {
  const signal = activityCancellationSignal();
  const { server, platform } = parseTarget(input);
  const keep = parseInput(z.number().int().min(2).max(50).default(3), input.keep, 'keep');
  const listing = await listReleases({ server, platform });
  const removed = releasesToPrune(listing.releases, listing.current, keep);
  if (removed.length > 0) {
    await withHeartbeat(
      () => ({ server: server.name, step: `prune ${removed.length} release(s) of ${platform.name}` }),
      () =>
        runRemote(server, ['rm', '-rf', '--', ...removed.map((id) => releaseDir(server, platform.name, id))], {
          timeoutMs: 10 * 60_000,
          signal,
          describe: 'remove old releases',
        }),
    );
  }
  return { server: server.name, removed };
}
