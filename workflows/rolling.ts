/**
 * Rolling code updates behind a cluster's load balancer, one member at a time, so that no request meets a member
 * whose code is half synced or broken.
 */
import { ApplicationFailure, patched } from '@temporalio/workflow';
import type { Platform, Server, Site } from '../domain/model';
import type { WebGroup } from '../domain/operations';
import { siteProbeSpec } from '../domain/site-probe';
import { drainWait, perServer, probe, quick, long } from './activity-stubs';
import { describeFailure } from './failures';
import { parallelism, SITE_BATCH_PATCH } from './group';
import type { Progress } from './progress';

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
  updated: string[];
  /** The member whose step failed: it is left drained (out of rotation). */
  stoppedAt?: { server: string; error: string };
  /** Members whose code differed but were not reached because the rollout stopped. */
  notReached: string[];
}

/**
 * A dry run finds the members whose code differs; each in turn is drained at the LB, its in-flight requests finish,
 * the code is synced, every site is probed through that member (the full probe), and only then it is back in
 * rotation. A member whose step fails stays drained and the rollout stops there: the members not reached keep
 * serving the code they had. (The code is synced in place while the member is out of rotation; switching members
 * already done back needs release directories, which sitefleet does not have yet.)
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
  for (const [i, server] of order.entries()) {
    let step = 'drain at the load balancer';
    try {
      progress.node(server.name, 'running', step);
      await quick.setLoadBalancerMember({ lb, cluster: group.name, member: server.name, state: 'drain' });
      step = 'wait for in-flight requests';
      progress.node(server.name, 'running', step);
      await drainWait.waitLoadBalancerMemberIdle({ lb, cluster: group.name, member: server.name, timeoutSeconds: 60 });
      for (const platform of platforms) {
        step = `sync ${platform.name}`;
        progress.node(server.name, 'running', step);
        const s = await long.syncPlatform({ server, platform, dryRun: false });
        if (s.filesChanged > 0) input.onSynced?.(server.name, platform.name, s.filesChanged);
      }
      // opcache (validate_timestamps, revalidate_freq) would serve the old code to the probe for a while: start
      // PHP cold on this member, which is drained, so no request sees the reload.
      step = 'reload php-fpm';
      progress.node(server.name, 'running', step);
      await quick.reloadPhpFpm({ server });
      step = 'probe every site';
      progress.node(server.name, 'running', step);
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
      step = 'back in rotation';
      await quick.setLoadBalancerMember({ lb, cluster: group.name, member: server.name, state: 'ready' });
      progress.node(server.name, 'done', 'updated, back in rotation');
      updated.push(server.name);
    } catch (err) {
      const error = `${step}: ${describeFailure(err)} (left out of rotation at ${lb.name})`;
      progress.node(server.name, 'failed', step, error);
      return { updated, stoppedAt: { server: server.name, error }, notReached: order.slice(i + 1).map((m) => m.name) };
    }
  }
  return { updated, notReached: [] };
}
