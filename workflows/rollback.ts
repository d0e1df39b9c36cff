/**
 * RollbackPlatform: every member of a cluster back on the release it ran before the current one, in one step.
 */
import { FailureType, permanentFailure } from '../common/failures';
import { patched } from '@temporalio/workflow';
import type { Platform, Server } from '../domain/model';
import type { RollbackPlatformInput } from '../domain/operations';
import { previousRelease } from '../domain/releases';
import { allBounded } from '../common/settle';
import { drainWait, quick, undo } from './activity-stubs';
import { failedAfterCompensation } from './failures';
import { codeReceivers, expectGroup, parallelism } from './group';
import { Progress } from './progress';
import { Saga } from './saga';
import { tagRun } from './search';

/**
 * Patch id of RollbackPlatform's drained switch of Apache members behind a load balancer (one at a time: drain,
 * switch, reload php-fpm, back in rotation). Histories recorded before switched them in place, then reloaded.
 */
export const ROLLBACK_DRAIN_PATCH = 'sitefleet-rollback-apache-drain';

interface PlannedSwitch {
  server: Server;
  from: string;
  to: string;
}

export interface RollbackPlatformResult {
  platform: string;
  members: { server: string; from: string; to: string }[];
}

/**
 * Finds on every member the release before the one it serves (domain/releases.ts previousRelease) and refuses,
 * changing nothing, when a member has none. Then switches every member's platform link at once (one rename each),
 * the code going back and the sites staying as they are (their directories carried into the older release);
 * if a switch fails, the members already switched go back and the workflow fails. Only when every member serves
 * its previous release are the releases rolled back from set aside (`ID.rolled-back`: never a rollback target
 * again). PHP sees the new paths at once behind nginx (`$realpath_root`). Apache members, whose PHP sees the
 * platform link, need a php-fpm reload, which cuts the requests in flight: behind a load balancer each Apache member
 * is drained, switched, reloaded and put back, one at a time, after the others have switched at once; without one,
 * they are switched and reloaded in place.
 */
export async function RollbackPlatform(input: RollbackPlatformInput): Promise<RollbackPlatformResult> {
  const { platform, group } = input;
  expectGroup(group, group.kind);
  tagRun({ platform: platform.name, group });
  const members = codeReceivers(group);
  const limit = parallelism(group);
  const progress = new Progress(
    'RollbackPlatform',
    members.map((m) => m.name),
  );
  progress.phase('find the previous release on every member');
  const listings = await allBounded(members, limit, (server) => quick.listReleases({ server, platform }));
  const plan: PlannedSwitch[] = [];
  const refusals: string[] = [];
  members.forEach((server, i) => {
    const { current, releases } = listings[i] as { current: string | null; releases: string[] };
    const to = current ? previousRelease(releases, current) : undefined;
    if (!current) refusals.push(`${server.name} has no releases of ${platform.name}`);
    else if (!to) refusals.push(`${server.name} has no release of ${platform.name} before ${current}`);
    else plan.push({ server, from: current, to });
  });
  if (refusals.length > 0) {
    throw permanentFailure(
      FailureType.Refused,
      `cannot roll back platform ${platform.name}: ${refusals.join('; ')} (releases are made by rolling updates ` +
        `behind a cluster's load balancer); nothing was changed`,
    );
  }

  const saga = new Saga();
  const isApache = (p: PlannedSwitch) => p.server.http?.type === 'apache';
  // The load balancer that Apache members are drained at, one at a time; none: every member switches in place.
  const lb = group.loadBalancer;
  const drainAt = lb && plan.some(isApache) && patched(ROLLBACK_DRAIN_PATCH) ? lb : undefined;
  let step = 'switch every member';
  try {
    progress.phase(step);
    await allBounded(drainAt ? plan.filter((p) => !isApache(p)) : plan, limit, async ({ server, from, to }) => {
      progress.node(server.name, 'running', `switch to ${to}`);
      await quick.switchRelease({ server, platform, to, carrySites: true });
      saga.add(`switch ${server.name} back to ${from}`, () => undo.switchRelease({ server, platform, to: from }), {
        on: server.name,
      });
    });
    if (drainAt) {
      for (const planned of plan.filter(isApache)) {
        step = `switch ${planned.server.name} drained at ${drainAt.name}`;
        progress.phase(step);
        await switchDrained(drainAt, group.name, platform, planned, saga, progress);
      }
    } else {
      step = 'reload php-fpm on Apache members';
      progress.phase(step);
      await allBounded(plan.filter(isApache), limit, ({ server }) => quick.reloadPhpFpm({ server }));
    }
  } catch (err) {
    progress.phase(`failed at "${step}", switching back`);
    throw failedAfterCompensation(step, err, await saga.compensate());
  }
  progress.phase('set aside the releases rolled back from');
  await allBounded(plan, limit, async ({ server, from, to }) => {
    await quick.switchRelease({ server, platform, to, discard: from });
    progress.node(server.name, 'done', `on ${to} (was ${from})`);
  });
  progress.phase('done');
  return { platform: platform.name, members: plan.map(({ server, from, to }) => ({ server: server.name, from, to })) };
}

/**
 * One Apache member out of rotation while PHP changes release: drain, wait for its requests in flight, switch,
 * reload php-fpm, back in rotation. Its undo does the same back to the release it came from, drained again.
 */
async function switchDrained(
  lb: Server,
  cluster: string,
  platform: Platform,
  { server, from, to }: PlannedSwitch,
  saga: Saga,
  progress: Progress,
): Promise<void> {
  const member = { lb, cluster, member: server.name };
  saga.add(
    `switch ${server.name} back to ${from}, drained`,
    async () => {
      await undo.setLoadBalancerMember({ ...member, state: 'drain' });
      await drainWait.waitLoadBalancerMemberIdle({ ...member, timeoutSeconds: 60 });
      // A repeated switch changes nothing, so this is right whether or not the switch happened.
      await undo.switchRelease({ server, platform, to: from });
      await undo.reloadPhpFpm({ server });
      await undo.setLoadBalancerMember({ ...member, state: 'ready' });
    },
    { on: server.name },
  );
  progress.node(server.name, 'running', 'drain at the load balancer');
  await quick.setLoadBalancerMember({ ...member, state: 'drain' });
  await drainWait.waitLoadBalancerMemberIdle({ ...member, timeoutSeconds: 60 });
  progress.node(server.name, 'running', `switch to ${to}`);
  await quick.switchRelease({ server, platform, to, carrySites: true });
  await quick.reloadPhpFpm({ server });
  await quick.setLoadBalancerMember({ ...member, state: 'ready' });
  progress.node(server.name, 'running', `on ${to}, back in rotation`);
}
