/**
 * Platform workflows: deploy a codebase on a server, a pack or a cluster; delete it.
 */
import { badInput, FailureType, permanentFailure } from '../common/failures';
import type { CreatePlatformInput, DeletePlatformInput, WebGroup } from '../domain/operations';
import type { Server } from '../domain/model';
import { quick, probe, long, undo } from './activity-stubs';
import { allBounded } from '../common/settle';
import { failedAfterCompensation } from './failures';
import { codeReceivers, expectGroup, parallelism, shareReaders } from './group';
import { Progress } from './progress';
import { describeStoppedRollout, rollOutCode } from './rolling';
import { syncPlatformCode } from './relay';
import { Saga } from './saga';
import { tagRun } from './search';

export interface PlatformResult {
  platform: string;
  synced: { server: string; filesChanged: number; bytesSent: number }[];
  sharedTo: string[];
}

/**
 * Web server config on every member, code by rsync to the code receivers (in parallel, bounded), then — for a
 * pack — proof that every slave sees the code through the share. A platform that did not exist before is removed
 * again if any step fails.
 */
async function createPlatformOnGroup(
  input: CreatePlatformInput,
  kind: WebGroup['kind'],
  operation: string,
): Promise<PlatformResult> {
  const { platform, group } = input;
  expectGroup(group, kind);
  if (platform.target.kind !== kind || platform.target.name !== group.name) {
    throw badInput(`platform.target: is ${platform.target.kind} ${platform.target.name}, not ${kind} ${group.name}`);
  }
  tagRun({ platform: platform.name, group });
  const limit = parallelism(group);
  const progress = new Progress(
    operation,
    group.members.map((m) => m.name),
  );
  const saga = new Saga();
  let step = 'web server config';
  try {
    progress.phase(step);
    await allBounded(group.members, limit, async (server) => {
      progress.node(server.name, 'running', step);
      await quick.ensureWebConfig({ server });
    });

    step = 'sync platform code';
    progress.phase(step);
    const receivers = codeReceivers(group);
    let toSync = receivers;
    const lb = group.loadBalancer;
    if (kind === 'cluster' && lb) {
      // An update behind a load balancer: members that have the platform get the new code one at a time, out of
      // rotation, in a new release, each probed before it serves again; a failed probe stops the update and
      // switches the members done back to their previous release (workflows/rolling.ts).
      step = 'rolling update';
      progress.phase(step);
      const sites = (group.loadBalancerRoutes?.sites ?? []).filter((s) => s.platform === platform.name);
      const have = await allBounded(receivers, limit, (server) => quick.platformExists({ server, platform }));
      const rolled = await rollOutCode({
        group,
        lb,
        servers: receivers.filter((_, i) => have[i]),
        platforms: [platform],
        sites,
        progress,
      });
      if (rolled.stoppedAt) {
        throw permanentFailure(FailureType.ProbeFailed, describeStoppedRollout(rolled));
      }
      // Members with releases have the code now; a push (or a relay, which refuses a platform link) is only for
      // members that did not have the platform.
      if (rolled.releases) toSync = receivers.filter((_, i) => !have[i]);
      step = 'sync platform code';
    }
    // Parallel rsync, or a relay where input.transfer says so (workflows/relay.ts).
    const synced =
      toSync.length === 0
        ? []
        : await syncPlatformCode(input, toSync, {
            progress,
            saga,
            limit,
            rsyncOne: async (server) => {
              progress.node(server.name, 'running', step);
              const existed = await quick.platformExists({ server, platform });
              if (!existed) {
                saga.add(`remove platform on ${server.name}`, () => undo.removePlatform({ server, platform }), {
                  on: server.name,
                });
              }
              const summary = await long.syncPlatform({ server, platform, dryRun: false });
              progress.node(server.name, 'done', `synced ${summary.filesChanged} file(s)`);
              return { server: server.name, filesChanged: summary.filesChanged, bytesSent: summary.bytesSent };
            },
          });

    step = 'check the share on every slave';
    const readers = shareReaders(group);
    if (readers.length > 0) {
      progress.phase(step);
      await allBounded(readers, limit, async (server: Server) => {
        progress.node(server.name, 'running', step);
        const seen = await probe.checkPlatformVisible({ server, platform });
        if (!seen.visible) {
          throw permanentFailure(
            FailureType.ShareNotVisible,
            `${server.name} does not see platform ${platform.name} through the share: ${seen.detail}`,
          );
        }
        progress.node(server.name, 'done', 'sees the platform through the share');
      });
    }
    progress.phase('done');
    return { platform: platform.name, synced, sharedTo: readers.map((r) => r.name) };
  } catch (err) {
    progress.phase(`failed at "${step}", compensating`);
    throw failedAfterCompensation(step, err, await saga.compensate());
  }
}

/** CreatePlatform on a single server. */
export async function CreatePlatform(input: CreatePlatformInput): Promise<PlatformResult> {
  return createPlatformOnGroup(input, 'server', 'CreatePlatform');
}

/** CreatePlatformOnPack: config to every member, code to the master only; slaves see it through the share. */
export async function CreatePlatformOnPack(input: CreatePlatformInput): Promise<PlatformResult> {
  return createPlatformOnGroup(input, 'pack', 'CreatePlatformOnPack');
}

/** CreatePlatformOnCluster: code and config to every member, in parallel with bounded concurrency. */
export async function CreatePlatformOnCluster(input: CreatePlatformInput): Promise<PlatformResult> {
  return createPlatformOnGroup(input, 'cluster', 'CreatePlatformOnCluster');
}

/** DeletePlatform: refused while any site remains (in the inventory or on a server); then removed everywhere. */
export async function DeletePlatform(input: DeletePlatformInput): Promise<{ platform: string; removedFrom: string[] }> {
  const { platform, group } = input;
  expectGroup(group, group.kind);
  tagRun({ platform: platform.name, group });
  if (input.sites.length > 0) {
    throw permanentFailure(
      FailureType.Refused,
      `platform ${platform.name} still has ${input.sites.length} site(s): ${input.sites.join(', ')}; delete them first`,
    );
  }
  const receivers = codeReceivers(group);
  const remote = await allBounded(receivers, parallelism(group), (server) =>
    quick.listPlatformSites({ server, platform }),
  );
  const leftovers = remote.flatMap((sites, i) => sites.map((s) => `${s} on ${receivers[i]?.name}`));
  if (leftovers.length > 0) {
    throw permanentFailure(
      FailureType.Refused,
      `platform ${platform.name} still has site directories: ${leftovers.join(', ')}; delete those sites first`,
    );
  }
  await allBounded(receivers, parallelism(group), (server) => quick.removePlatform({ server, platform }));
  return { platform: platform.name, removedFrom: receivers.map((r) => r.name) };
}
