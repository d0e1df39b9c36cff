/**
 * The load balancer in front of a cluster follows every change: membership (AddClusterMember, RemoveClusterMember)
 * and sites (install, enable, disable, delete) re-render the cluster's haproxy block, `haproxy -c` tests it, and a
 * graceful reload puts it live. Each change registers its undo, so a later failing step puts the previous block
 * back like every other config.
 */
import type { ClusterLoadBalancerInput, WebGroup } from '../domain/operations';
import type { Platform, Server, Site } from '../domain/model';
import { quick, undo } from './activity-stubs';
import { failedAfterCompensation } from './failures';
import { badInput } from '../common/failures';
import { expectGroup } from './group';
import { Progress } from './progress';
import { Saga } from './saga';
import { tagRun } from './search';

export interface LbView {
  /** The members in rotation. @default group.members */
  members?: Server[];
  /** A site whose state this operation changes: its new state (or `remove`), in place of the inventory's. */
  site?: { site: Site; platform: Platform; remove?: boolean };
}

/**
 * Puts the cluster's view (members, enabled sites) on its load balancer, when it has one, and registers the undo.
 * No-op for groups without a load balancer.
 */
export async function followOnLoadBalancer(group: WebGroup, saga: Saga, view: LbView = {}): Promise<void> {
  const lb = group.loadBalancer;
  if (group.kind !== 'cluster' || !lb) return;
  const routes = group.loadBalancerRoutes ?? { platforms: [], sites: [] };
  const domain = view.site?.site.domain;
  const sites = routes.sites.filter((s) => s.domain !== domain);
  const platforms = [...routes.platforms];
  if (view.site && !view.site.remove) {
    sites.push(view.site.site);
    if (!platforms.some((p) => p.name === view.site?.platform.name)) platforms.push(view.site.platform);
  }
  const change = await quick.configureLoadBalancer({
    lb,
    cluster: group.name,
    members: view.members ?? group.members,
    sites,
    platforms,
  });
  saga.add(
    `restore load balancer ${lb.name}`,
    () => undo.restoreLoadBalancer({ lb, cluster: group.name, previous: change.previous }),
    { on: lb.name },
  );
}

/**
 * ConfigureClusterLoadBalancer (`cluster set-lb`): renders the cluster's block on its load balancer and, when the
 * cluster moved from another load balancer (or has none now), removes the block from the previous one.
 */
export async function ConfigureClusterLoadBalancer(
  input: ClusterLoadBalancerInput,
): Promise<{ cluster: string; loadBalancer: string | null; removedFrom: string | null }> {
  const { group, previous } = input;
  expectGroup(group, 'cluster');
  if (group.loadBalancer && !group.loadBalancer.lb) {
    throw badInput(`group.loadBalancer: server ${group.loadBalancer.name} has no lb service`);
  }
  tagRun({ group });
  const progress = new Progress(
    'ConfigureClusterLoadBalancer',
    group.members.map((m) => m.name),
  );
  const saga = new Saga();
  const routed: WebGroup = { ...group, loadBalancerRoutes: { platforms: input.platforms, sites: input.sites } };
  let step = 'configure the load balancer';
  try {
    progress.phase(step);
    await followOnLoadBalancer(routed, saga);
    const moved = previous && previous.name !== group.loadBalancer?.name ? previous : undefined;
    if (moved) {
      step = `remove the cluster from ${moved.name}`;
      progress.phase(step);
      const change = await quick.removeLoadBalancer({ lb: moved, cluster: group.name });
      saga.add(`restore ${moved.name}`, () =>
        undo.restoreLoadBalancer({ lb: moved, cluster: group.name, previous: change.previous }),
      );
    }
    progress.phase('done');
    return { cluster: group.name, loadBalancer: group.loadBalancer?.name ?? null, removedFrom: moved?.name ?? null };
  } catch (err) {
    throw failedAfterCompensation(step, err, await saga.compensate());
  }
}
