/**
 * RollbackPlatform: every member of a cluster back on the release it ran before the current one, in one step.
 */
import { FailureType, permanentFailure } from '../common/failures';
import type { Server } from '../domain/model';
import type { RollbackPlatformInput } from '../domain/operations';
import { previousRelease } from '../domain/releases';
import { allBounded } from '../common/settle';
import { quick, undo } from './activity-stubs';
import { failedAfterCompensation } from './failures';
import { codeReceivers, expectGroup, parallelism } from './group';
import { Progress } from './progress';
import { Saga } from './saga';
import { tagRun } from './search';

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
 * again). PHP sees the new paths at once behind nginx (`$realpath_root`); Apache members, whose PHP sees the
 * platform link, get a graceful php-fpm reload.
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
  const plan: { server: Server; from: string; to: string }[] = [];
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
  let step = 'switch every member';
  try {
    progress.phase(step);
    await allBounded(plan, limit, async ({ server, from, to }) => {
      progress.node(server.name, 'running', `switch to ${to}`);
      await quick.switchRelease({ server, platform, to, carrySites: true });
      saga.add(`switch ${server.name} back to ${from}`, () => undo.switchRelease({ server, platform, to: from }), {
        on: server.name,
      });
    });
    step = 'reload php-fpm on Apache members';
    progress.phase(step);
    await allBounded(
      plan.filter((p) => p.server.http?.type === 'apache'),
      limit,
      ({ server }) => quick.reloadPhpFpm({ server }),
    );
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
