/**
 * Rolling code updates behind a cluster's load balancer, one member at a time, so that no request meets a member
 * whose code is half synced or broken.
 */
import { ApplicationFailure, CancellationScope, log, patched, workflowInfo } from '@temporalio/workflow';
import type { Platform, Server, Site } from '../domain/model';
import type { WebGroup } from '../domain/operations';
import { releaseIdFor } from '../domain/releases';
import { siteProbeSpec } from '../domain/site-probe';
import { drainWait, long, perServer, probe, quick, undo } from './activity-stubs';
import { describeFailure } from './failures';
import { parallelism, SITE_BATCH_PATCH } from './group';
import type { Progress } from './progress';

/**
 * Patch id (workflow `patched()`) of release directories: the code goes into a new release and the platform link
 * is switched (activities/releases.ts). Histories recorded before replay the in-place sync.
 */
export const RELEASES_PATCH = 'sitefleet-releases';

export interface RollOutInput {
  group: WebGroup;
  lb: Server;
  /** The members to consider (those whose code differs are updated, in this order). */
  servers: Server[];
  platforms: Platform[];
  /** The sites to probe on each member (enabled ones on the platforms). */
  sites: Site[];
  progress: Progress;
  onSynced?: (server: string, platform: string, filesChanged: number) => void;
}

export interface RollOutResult {
  /** The members that serve the new code. */
  updated: string[];
  /** The member whose step failed; with releases it is switched back (see switchedBack), else left drained. */
  stoppedAt?: { server: string; error: string };
  /** Members whose code differed but were not reached because the rollout stopped. */
  notReached: string[];
  /** After a failure: the members switched back to their previous release (the failed one first). */
  switchedBack: string[];
  /** After a failure: members whose switch back failed, with why (each is left out of rotation). */
  switchBackFailed: string[];
  /** The code went into release directories (RELEASES_PATCH): the members rolled need no other push. */
  releases: boolean;
}

/** What a member had before the new release: per platform, the release to switch back to. */
interface PreparedMember {
  server: Server;
  previous: { platform: Platform; release: string | null }[];
}

/**
 * A dry run finds the members whose code differs; each in turn is drained at the LB, its in-flight requests finish,
 * the code goes into a new release directory (a hard-link copy of the current one, then rsync) and the platform
 * link is switched to it, php-fpm restarts cold, every site is probed through that member (the full probe), and
 * only then it is back in rotation. If a step fails, that member switches back to its previous release, the
 * rollout stops, and the members already done switch back too, one at a time and drained (the failed one first,
 * then the others in reverse order); each is probed again before it returns to rotation. Members not reached keep
 * serving the code they had. After a rollout that passes, each member keeps its last 3 releases.
 *
 * Histories recorded before RELEASES_PATCH sync in place: a member whose step fails stays drained.
 */
export async function rollOutCode(input: RollOutInput): Promise<RollOutResult> {
  const { group, lb, platforms, progress } = input;
  const changed = new Set<string>();
  for (const platform of platforms) {
    if (input.servers.length === 0) break;
    const { results } = await long.syncPlatformToServers({
      servers: input.servers,
      platform,
      dryRun: true,
      maxParallel: parallelism(group),
    });
    for (const r of results) if (r.ok && r.summary.filesChanged > 0) changed.add(r.server);
  }
  const order = input.servers.filter((m) => changed.has(m.name));
  const updated: string[] = [];
  const sites = input.sites.filter((s) => s.status === 'enabled' && platforms.some((p) => p.name === s.platform));
  const release = patched(RELEASES_PATCH) ? releaseIdFor(new Date(Date.now()), workflowInfo().runId) : undefined;
  const member = (server: Server, state: 'drain' | 'ready') =>
    quick.setLoadBalancerMember({ lb, cluster: group.name, member: server.name, state });
  // Members that have the new release, in order (the ones to switch back if a later member fails).
  const done: PreparedMember[] = [];
  for (const [i, server] of order.entries()) {
    let step = 'drain at the load balancer';
    let prepared: PreparedMember | undefined;
    try {
      progress.node(server.name, 'running', step);
      await member(server, 'drain');
      step = 'wait for in-flight requests';
      progress.node(server.name, 'running', step);
      await drainWait.waitLoadBalancerMemberIdle({ lb, cluster: group.name, member: server.name, timeoutSeconds: 60 });
      for (const platform of platforms) {
        if (release) {
          step = `prepare release ${release} of ${platform.name}`;
          progress.node(server.name, 'running', step);
          const p = await long.prepareRelease({ server, platform, release });
          prepared ??= { server, previous: [] };
          prepared.previous.push({ platform, release: p.previous });
          step = `sync ${platform.name} into release ${release}`;
        } else {
          step = `sync ${platform.name}`;
        }
        progress.node(server.name, 'running', step);
        const s = await long.syncPlatform({ server, platform, dryRun: false, ...(release ? { release } : {}) });
        if (s.filesChanged > 0) input.onSynced?.(server.name, platform.name, s.filesChanged);
        if (release) {
          step = `switch ${platform.name} to release ${release}`;
          await quick.switchRelease({ server, platform, to: release });
        }
      }
      // opcache (validate_timestamps, revalidate_freq) would serve the old code to the probe for a while: start
      // PHP cold on this member, which is drained, so no request sees the reload.
      step = 'reload php-fpm';
      progress.node(server.name, 'running', step);
      await quick.reloadPhpFpm({ server });
      step = 'probe every site';
      progress.node(server.name, 'running', step);
      await probeEverySite(server, platforms, sites);
      step = 'back in rotation';
      await member(server, 'ready');
      progress.node(server.name, 'done', 'updated, back in rotation');
      updated.push(server.name);
    } catch (err) {
      const stopped = `${step}: ${describeFailure(err)}`;
      if (!release) {
        const error = `${stopped} (left out of rotation at ${lb.name})`;
        progress.node(server.name, 'failed', step, error);
        return {
          updated,
          stoppedAt: { server: server.name, error },
          notReached: order.slice(i + 1).map((m) => m.name),
          switchedBack: [],
          switchBackFailed: [],
          releases: false,
        };
      }
      progress.node(server.name, 'failed', step, stopped);
      progress.phase(`rolling update stopped at ${server.name}: switching back`);
      // The failed member first (it is drained), then the members done, newest first (each drained again).
      const back = [...(prepared ? [{ ...prepared, inRotation: false }] : [])];
      for (const m of [...done].reverse()) back.push({ ...m, inRotation: true });
      const switchedBack: string[] = [];
      const switchBackFailed: string[] = [];
      await CancellationScope.nonCancellable(async () => {
        for (const m of back) {
          try {
            await switchMemberBack(input, m, release, m.inRotation);
            switchedBack.push(m.server.name);
          } catch (e) {
            const error = describeFailure(e);
            progress.node(m.server.name, 'failed', 'switch back', `${error} (left out of rotation at ${lb.name})`);
            switchBackFailed.push(`${m.server.name}: ${error}`);
          }
        }
      });
      const where = !prepared
        ? `left out of rotation at ${lb.name}`
        : switchedBack.includes(server.name)
          ? 'switched back to its previous release'
          : `switching back failed, left out of rotation at ${lb.name}`;
      return {
        updated: updated.filter((n) => !switchedBack.includes(n)),
        stoppedAt: { server: server.name, error: `${stopped} (${where})` },
        notReached: order.slice(i + 1).map((m) => m.name),
        switchedBack,
        switchBackFailed,
        releases: true,
      };
    }
    if (prepared) done.push(prepared);
  }
  if (release) await pruneOldReleases(input, order);
  return { updated, notReached: [], switchedBack: [], switchBackFailed: [], releases: release !== undefined };
}

/** Every site of the member through the member itself (the full probe); throws ProbeFailed at the first failure. */
async function probeEverySite(server: Server, platforms: Platform[], sites: Site[]): Promise<void> {
  if (sites.length > 0 && patched(SITE_BATCH_PATCH)) {
    // One activity for every site of the member (the history does not grow with the sites).
    const r = await perServer.probeSitesOnServer({ server, platforms, sites, stopAtFirstFailure: true });
    const failure = r.failures[0];
    if (failure) {
      throw ApplicationFailure.create({
        type: 'ProbeFailed',
        message: `${failure.domain} through ${server.name}: ${failure.detail}`,
        nonRetryable: true,
      });
    }
  }
  for (const site of patched(SITE_BATCH_PATCH) ? [] : sites) {
    const platform = platforms.find((p) => p.name === site.platform) as Platform;
    const res = await probe.probeSite({ server, site, platform, ...siteProbeSpec(site, platform) });
    if (!res.ok) {
      throw ApplicationFailure.create({
        type: 'ProbeFailed',
        message: `${site.domain} through ${server.name}: ${res.detail}`,
        nonRetryable: true,
      });
    }
  }
}

/**
 * Puts a member back on the releases it had before `release` (which is set aside as rolled back): drained first
 * when it serves, php-fpm restarted cold, every site probed, then back in rotation. A member whose probe fails
 * stays drained (the error says so).
 */
async function switchMemberBack(
  input: RollOutInput,
  m: PreparedMember,
  release: string,
  inRotation: boolean,
): Promise<void> {
  const { group, lb, progress } = input;
  const { server } = m;
  const member = { lb, cluster: group.name, member: server.name };
  if (inRotation) {
    progress.node(server.name, 'running', 'switch back: drain');
    await undo.setLoadBalancerMember({ ...member, state: 'drain' });
    await drainWait.waitLoadBalancerMemberIdle({ ...member, timeoutSeconds: 60 });
  }
  for (const { platform, release: previous } of [...m.previous].reverse()) {
    progress.node(server.name, 'running', `switch ${platform.name} back to ${previous ?? 'no release'}`);
    await undo.switchRelease({ server, platform, to: previous, discard: release });
  }
  await undo.reloadPhpFpm({ server });
  const sites = input.sites.filter(
    (s) => s.status === 'enabled' && m.previous.some((p) => p.platform.name === s.platform),
  );
  await probeEverySite(server, input.platforms, sites);
  await undo.setLoadBalancerMember({ ...member, state: 'ready' });
  progress.node(server.name, 'done', 'switched back to its previous release, back in rotation');
}

/** Keeps each updated member's last 3 releases; a failure here is logged, not a failed update. */
async function pruneOldReleases(input: RollOutInput, servers: Server[]): Promise<void> {
  for (const server of servers) {
    for (const platform of input.platforms) {
      try {
        await quick.pruneReleases({ server, platform, keep: 3 });
      } catch (err) {
        log.warn('old releases not pruned', {
          server: server.name,
          platform: platform.name,
          error: describeFailure(err),
        });
      }
    }
  }
}

/** One line for a stopped rollout: where, why, and what each member runs now. */
export function describeStoppedRollout(r: RollOutResult): string {
  const list = (names: string[]): string => names.join(', ') || 'none';
  return (
    `rolling update stopped at ${r.stoppedAt?.server ?? '?'}: ${r.stoppedAt?.error ?? ''}; ` +
    `updated: ${list(r.updated)}; ` +
    (r.switchedBack.length > 0 ? `switched back: ${list(r.switchedBack)}; ` : '') +
    (r.switchBackFailed.length > 0 ? `switch back failed: ${r.switchBackFailed.join('; ')}; ` : '') +
    `not reached: ${list(r.notReached)}`
  );
}
