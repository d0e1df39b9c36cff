/**
 * Site vhosts: one file per site per server at Aegir's path (`server_NAME/{nginx,apache}/vhost.d/DOMAIN`), rendered
 * with that server's own values, written atomically, tested, and only then reloaded gracefully.
 */
import { platformSchema, serverSchema, siteSchema, type Platform, type Server, type Site } from '../domain/model';
import { siteDir, vhostPath } from '../domain/paths';
import { activityCancellationSignal } from './support/activity-context';
import { parseInput } from './support/activity-input';
import { readRemoteFile, removeRemoteFile, writeRemoteFile } from './transport/remote-file';
import { renderVhost } from './render';
import { runRemote } from './transport/ssh-command';
import { changeWebConfig, webServerType } from './web-server';

function vhostFile(server: Server, domain: string): string {
  return vhostPath(server, webServerType(server), domain);
}

/** Puts `content` (or no file, for null) at the site's vhost path; returns what was there and how to undo. */
async function putVhost(server: Server, domain: string, content: string | null, signal?: AbortSignal) {
  const path = vhostFile(server, domain);
  const write =
    content === null
      ? { ...(await removeRemoteFile(server, path, { signal })), changed: false }
      : await writeRemoteFile(server, path, content, { owner: server.aegirUser, mode: '0644', signal });
  const changed = content === null ? write.previous !== null : write.changed;
  const undo = () =>
    write.previous === null
      ? removeRemoteFile(server, path, { signal })
      : writeRemoteFile(server, path, write.previous, { owner: server.aegirUser, mode: '0644', signal });
  return { path, previous: write.previous, changed, undo };
}

export interface InstallVhostInput {
  server: Server;
  site: Site;
  platform: Platform;
}

export interface VhostChange {
  server: string;
  path: string;
  /** False when the file already had this content (no reload on a first attempt). */
  changed: boolean;
  /** The vhost before the change (null: there was none); a compensation passes it to restoreVhost. */
  previous: string | null;
}

/**
 * Installs (or updates, or switches to the disabled variant of) a site's vhost on one server: atomic write,
 * config test, graceful reload. A vhost that fails the test is rolled back and the activity fails with a
 * non-retryable ConfigTestFailed quoting the test output; the server keeps serving as before.
 */
export async function installVhost(input: InstallVhostInput): Promise<VhostChange> {
  const signal = activityCancellationSignal();
  const server = parseInput(serverSchema, input.server, 'server');
  const site = parseInput(siteSchema, input.site, 'site');
  const platform = parseInput(platformSchema, input.platform, 'platform');
  const content = renderVhost({ server, site, platform });
  const result = await changeWebConfig(
    server,
    `the vhost of ${site.domain}`,
    () => putVhost(server, site.domain, content, signal),
    signal,
  );
  return { server: server.name, path: result.path, changed: result.changed, previous: result.previous };
}

/**
 * Writes the vhosts of many sites on one server, then tests the config and reloads once (only when a vhost
 * changed, or on a retry): what a resync of every site does, without a reload per site. A config that fails the
 * test rolls every vhost of the batch back (non-retryable ConfigTestFailed); the server keeps serving as before.
 * `onProgress` is called after each file, with the number written so far.
 */
export async function installVhosts(
  input: { server: Server; sites: { site: Site; platform: Platform }[] },
  onProgress?: (done: number) => void,
): Promise<{ domain: string; changed: boolean }[]> {
  const { server } = input;
  const vhosts = input.sites.map(({ site, platform }) => ({
    domain: site.domain,
    content: renderVhost({ server, site, platform }),
  }));
  return putVhosts(server, `the vhosts of ${vhosts.length} site(s)`, vhosts, onProgress);
}

/**
 * Puts back many vhosts on one server (content, or no file for null) with one config test and one reload: the
 * undo of a batch of installs, and the removal of every site from a leaving member. Rolled back as a whole if the
 * test fails, like installVhosts. Idempotent.
 */
export async function restoreVhosts(
  input: { server: Server; vhosts: { domain: string; previous: string | null }[] },
  onProgress?: (done: number) => void,
): Promise<{ domain: string; changed: boolean }[]> {
  const vhosts = input.vhosts.map((v) => ({ domain: v.domain, content: v.previous }));
  return putVhosts(input.server, `restoring the vhosts of ${vhosts.length} site(s)`, vhosts, onProgress);
}

/** Writes (or removes, for null) many vhosts under one changeWebConfig: one test, one reload, undone together. */
async function putVhosts(
  server: Server,
  what: string,
  vhosts: { domain: string; content: string | null }[],
  onProgress?: (done: number) => void,
): Promise<{ domain: string; changed: boolean }[]> {
  const signal = activityCancellationSignal();
  const written: { domain: string; changed: boolean; undo: () => Promise<unknown> }[] = [];
  await changeWebConfig(
    server,
    what,
    async () => {
      written.length = 0;
      for (const { domain, content } of vhosts) {
        const w = await putVhost(server, domain, content, signal);
        written.push({ domain, changed: w.changed, undo: w.undo });
        onProgress?.(written.length);
      }
      return {
        changed: written.some((w) => w.changed),
        undo: async () => {
          for (const w of [...written].reverse()) if (w.changed) await w.undo();
        },
      };
    },
    signal,
  );
  return written.map(({ domain, changed }) => ({ domain, changed }));
}

export interface RestoreVhostInput {
  server: Server;
  site: Pick<Site, 'domain'>;
  /** The content to put back; null removes the vhost. */
  previous: string | null;
}

/**
 * Compensation of installVhost (and the removal step of DeleteSite): puts back the previous vhost, or removes it
 * when there was none, then tests and reloads. Idempotent.
 */
export async function restoreVhost(input: RestoreVhostInput): Promise<VhostChange> {
  const signal = activityCancellationSignal();
  const server = parseInput(serverSchema, input.server, 'server');
  const { domain } = parseInput(siteSchema.pick({ domain: true }), { domain: input.site.domain }, 'site');
  const result = await changeWebConfig(
    server,
    input.previous === null ? `removing the vhost of ${domain}` : `restoring the vhost of ${domain}`,
    () => putVhost(server, domain, input.previous, signal),
    signal,
  );
  return { server: server.name, path: result.path, changed: result.changed, previous: result.previous };
}

export interface RemoveVhostInput {
  server: Server;
  site: Pick<Site, 'domain'>;
}

/** Removes a site's vhost from one server (tested, then reloaded). Same as restoreVhost with `previous: null`. */
export async function removeVhost(input: RemoveVhostInput): Promise<VhostChange> {
  return restoreVhost({ server: input.server, site: input.site, previous: null });
}

export interface InspectSiteInput {
  server: Server;
  site: Site;
  platform: Platform;
}

export interface SiteState {
  server: string;
  /** The site's vhost on this server, or null. */
  vhost: string | null;
  /** Whether PLATFORM/sites/DOMAIN exists on this server (through the share, for a pack's slave). */
  siteDirExists: boolean;
}

/** What a site looks like on one server before a change: the snapshot compensations restore. Changes nothing. */
export async function inspectSite(input: InspectSiteInput): Promise<SiteState> {
  const signal = activityCancellationSignal();
  const server = parseInput(serverSchema, input.server, 'server');
  const site = parseInput(siteSchema, input.site, 'site');
  const platform = parseInput(platformSchema, input.platform, 'platform');
  const [vhost, dir] = await Promise.all([
    readRemoteFile(server, vhostFile(server, site.domain), { signal }),
    runRemote(server, ['test', '-d', siteDir(server, platform.name, site.domain)], {
      timeoutMs: 30_000,
      signal,
      allowExitCodes: [0, 1],
    }),
  ]);
  return { server: server.name, vhost, siteDirExists: dir.code === 0 };
}
