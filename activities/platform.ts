/**
 * Platform code on servers: pushed by rsync from this worker to the code receivers (in parallel, bounded), checked
 * for drift with a dry run, seen through the share by a pack's slaves, listed and removed.
 */
import { z } from 'zod';
import { metricMeter } from '@temporalio/activity';
import { recordSync } from '../metrics/sitefleet';
import { platformSchema, serverSchema, type Platform, type Server } from '../domain/model';
import { platformRoot, platformsDir, releaseDir, releasesDir, sitesDir } from '../domain/paths';
import { releaseIdSchema } from './releases';
import { WORDPRESS_HEALTH_PATH } from '../domain/site-probe';
import { activityCancellationSignal, withHeartbeat } from './support/activity-context';
import { parseInput } from './support/activity-input';
import { FailureType, permanentFailure } from '../common/failures';
import { platformSourceDir } from './platform-source';
import { rsyncToServer, rsyncToServers, type RsyncHostResult } from './transport/rsync';
import type { RsyncSummary } from './transport/rsync-output';
import { inspectRemoteFiles, writeDifferingFiles } from './transport/remote-file';
import { platformOwnFiles } from './site-files';
import { runRemote } from './transport/ssh-command';

/**
 * rsync filter rules of a platform push (first match wins). Site directories and alias links are made on the
 * servers and are never pushed nor deleted; `sites/all` and `sites/default` come from the source; uploaded files
 * (files/, private/, directories or a cluster's links to its uploads share) are never overwritten or deleted by a code push, so a push cannot wipe uploads the way
 * Aegir's cluster push could. WordPress's wp-config.php is sitefleet's dispatcher, not the source's, and its
 * health script is sitefleet's too.
 */
export function platformSyncFilters(profile: Platform['profile']): string[] {
  return [
    '- /sites/*/files',
    '- /sites/*/private',
    'P /sites/',
    '+ /sites/all/',
    '+ /sites/default/',
    '- /sites/*/',
    'P /sites/*',
    ...(profile === 'wordpress' ? ['- /wp-config.php', `- ${WORDPRESS_HEALTH_PATH}`] : []),
  ];
}

/**
 * Platform code is the aegir user's: readable and traversable by the web server, writable by nobody else (rsync
 * `--chmod` syntax; the relay applies the same, activities/relay/relay-manifest.ts).
 */
export const PLATFORM_CHMOD = 'u+rwX,go+rX,go-w';

export interface SyncPlatformInput {
  server: Server;
  platform: Platform;
  /** Report drift against the source without changing anything. @default false */
  dryRun?: boolean;
  /**
   * Sync into this release directory (activities/releases.ts prepareRelease made it) instead of the platform root,
   * which keeps serving the release it links to. @default the platform root
   */
  release?: string;
}

export type SyncPlatformResult = RsyncSummary & { server: string; platform: string };

async function syncOne(
  server: Server,
  platform: Platform,
  dryRun: boolean,
  signal?: AbortSignal,
  release?: string,
): Promise<RsyncSummary> {
  const source = await withHeartbeat(
    () => ({ server: server.name, step: `fetch the source of ${platform.name}` }),
    () => platformSourceDir(platform, signal),
  );
  // Into a release: its own path, never through the platform root's link (which serves the current release).
  const destination = release ? releaseDir(server, platform.name, release) : platformRoot(server, platform.name);
  const push = rsyncToServer(server, {
    source,
    destination,
    filters: platformSyncFilters(platform.profile),
    dryRun,
    chown: `${server.aegirUser}:${server.aegirUser}`,
    chmod: PLATFORM_CHMOD,
    signal,
  });
  if (dryRun) return push;
  // sitefleet's own files (outside the push: its filters keep rsync from touching them) are checked while rsync
  // runs — one round trip that is most of a no-op resync — but written only after it: rsync --delete would remove
  // a writer's temp file from under it.
  const files = platformOwnFiles(server, platform, destination);
  const inspect = files.length > 0 ? inspectRemoteFiles(server, files, { signal }) : Promise.resolve([]);
  const [pushed, inspected] = await Promise.allSettled([push, inspect]);
  if (pushed.status === 'rejected') throw pushed.reason;
  const inSync = inspected.status === 'fulfilled' ? inspected.value : files.map(() => false);
  await writeDifferingFiles(server, files, inSync, { signal });
  const summary = pushed.value;
  recordSync(metricMeter, server.name, summary.filesChanged, summary.bytesSent);
  return summary;
}

/**
 * Pushes the platform's code to one server (rsync --delete over a reused, pinned connection, owned by the aegir
 * user, heartbeating progress), or with `dryRun` reports the drift. Returns the itemized summary.
 */
export async function syncPlatform(input: SyncPlatformInput): Promise<SyncPlatformResult> {
  const signal = activityCancellationSignal();
  const server = parseInput(serverSchema, input.server, 'server');
  const platform = parseInput(platformSchema, input.platform, 'platform');
  const release = input.release === undefined ? undefined : parseInput(releaseIdSchema, input.release, 'release');
  const summary = await syncOne(server, platform, input.dryRun ?? false, signal, release);
  return { ...summary, server: server.name, platform: platform.name };
}

export type SyncPlatformHostResult = RsyncHostResult;

export interface SyncPlatformToServersInput {
  servers: Server[];
  platform: Platform;
  dryRun?: boolean;
  /** At most this many rsyncs at once. @default 8 */
  maxParallel?: number;
}

/**
 * The same push to many servers at once (bounded), each exactly as {@link syncPlatform} does it: one activity for
 * a whole group, so that a resync of many members costs one activity task, not one per member. Never fails as a
 * whole: each server has its own result, so the workflow sees which members are done and which to retry.
 */
export async function syncPlatformToServers(
  input: SyncPlatformToServersInput,
): Promise<{ platform: string; results: SyncPlatformHostResult[] }> {
  const signal = activityCancellationSignal();
  const servers = parseInput(z.array(serverSchema).min(1), input.servers, 'servers');
  const platform = parseInput(platformSchema, input.platform, 'platform');
  const maxParallel = parseInput(z.number().int().min(1).max(64).default(8), input.maxParallel, 'maxParallel');
  const dryRun = input.dryRun ?? false;
  const results = await rsyncToServers(servers, (server) => syncOne(server, platform, dryRun, signal), maxParallel);
  return { platform: platform.name, results };
}

export interface PlatformOnServerInput {
  server: Server;
  platform: Platform;
}

/** Whether the platform's root directory exists on the server. */
export async function platformExists(input: PlatformOnServerInput): Promise<boolean> {
  const signal = activityCancellationSignal();
  const server = parseInput(serverSchema, input.server, 'server');
  const platform = parseInput(platformSchema, input.platform, 'platform');
  const r = await runRemote(server, ['test', '-d', platformRoot(server, platform.name)], {
    timeoutMs: 30_000,
    signal,
    allowExitCodes: [0, 1],
  });
  return r.code === 0;
}

/** Site directories (not alias links, not all/default) under the platform's sites/ on the server. */
export async function listPlatformSites(input: PlatformOnServerInput): Promise<string[]> {
  const signal = activityCancellationSignal();
  const server = parseInput(serverSchema, input.server, 'server');
  const platform = parseInput(platformSchema, input.platform, 'platform');
  const r = await runRemote(
    server,
    [
      'sh',
      '-c',
      '[ -d "$1" ] || exit 0; find "$1" -mindepth 1 -maxdepth 1 -type d -printf "%f\\n"',
      'sitefleet-list',
      sitesDir(server, platform.name),
    ],
    { timeoutMs: 30_000, signal },
  );
  return r.stdout
    .split('\n')
    .filter((name) => name.includes('.') && name !== 'all' && name !== 'default')
    .sort();
}

/**
 * Removes the platform's root directory from the server (DeletePlatform, and compensation of a new platform); on
 * a member with releases, the link and every release.
 */
export async function removePlatform(input: PlatformOnServerInput): Promise<{ server: string; removed: boolean }> {
  const signal = activityCancellationSignal();
  const server = parseInput(serverSchema, input.server, 'server');
  const platform = parseInput(platformSchema, input.platform, 'platform');
  const root = platformRoot(server, platform.name);
  if (!root.startsWith(`${platformsDir(server)}/`) || root === platformsDir(server)) {
    throw permanentFailure(FailureType.BadInput, `refusing to remove ${root}: not a platform directory`);
  }
  const r = await runRemote(
    server,
    [
      'sh',
      '-c',
      '[ -e "$1" ] || [ -L "$1" ] || [ -e "$2" ] || { echo absent; exit 0; }; rm -rf -- "$1" "$2"; echo removed',
      'sitefleet-rm',
      root,
      releasesDir(server, platform.name),
    ],
    {
      timeoutMs: 300_000,
      signal,
    },
  );
  return { server: server.name, removed: r.stdout.includes('removed') };
}

/** Whether a server (a pack's slave) sees the platform's code, through the share: `{ visible, detail }`. */
export async function checkPlatformVisible(
  input: PlatformOnServerInput,
): Promise<{ server: string; visible: boolean; detail: string }> {
  const signal = activityCancellationSignal();
  const server = parseInput(serverSchema, input.server, 'server');
  const platform = parseInput(platformSchema, input.platform, 'platform');
  const root = platformRoot(server, platform.name);
  const r = await runRemote(
    server,
    ['sh', '-c', '[ -d "$1" ] || { echo missing; exit 0; }; ls -A -- "$1" | wc -l', 'sitefleet-visible', root],
    { timeoutMs: 30_000, signal },
  );
  const out = r.stdout.trim();
  if (out === 'missing')
    return { server: server.name, visible: false, detail: `${root} does not exist on ${server.name}` };
  const entries = Number(out);
  return entries > 0
    ? { server: server.name, visible: true, detail: `${root} has ${entries} entries` }
    : { server: server.name, visible: false, detail: `${root} is empty on ${server.name}` };
}
