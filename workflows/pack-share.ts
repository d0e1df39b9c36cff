/**
 * SetupPackShare: the NFS share through which a pack's slaves read the master's platforms.
 */
import { badInput, FailureType, permanentFailure } from '../common/failures';
import { workflowInfo } from '@temporalio/workflow';
import type { SetupPackShareInput } from '../domain/operations';
import type { Server } from '../domain/model';
import { quick, probe, undo } from './activity-stubs';
import { allBounded } from '../common/settle';
import { failedAfterCompensation } from './failures';
import { expectGroup, parallelism, shareReaders } from './group';
import { Progress } from './progress';
import { Saga } from './saga';
import { tagRun } from './search';

export interface PackShareResult {
  pack: string;
  exportedBy: string;
  mountedOn: string[];
  ids: { uid: number; gid: number };
  nfsReadable: string[];
}

/**
 * Guarantees: the aegir uid/gid is the same on every member and the share server (else nothing changes); the
 * export exists once; every slave mounts it now and at boot (one fstab line); a sentinel written on the share
 * server is visible on every slave. On failure, exports and mounts made by this run are removed.
 */
export async function SetupPackShare(input: SetupPackShareInput): Promise<PackShareResult> {
  const group = input.pack;
  expectGroup(group, 'pack');
  const share = group.share;
  if (!share) throw badInput('pack.share: a pack needs a share');
  const slaves = shareReaders(group);
  const everyone: Server[] = [...group.members.filter((m) => m.name !== share.server.name), share.server];
  tagRun({ group, servers: everyone.map((s) => s.name) });
  const limit = parallelism(group);
  const progress = new Progress(
    'SetupPackShare',
    everyone.map((s) => s.name),
  );
  const saga = new Saga();
  let step = 'uid/gid parity';
  try {
    progress.phase(step);
    const ids = await allBounded(everyone, limit, (server) => quick.readAegirIds({ server }));
    const first = ids[0] as { uid: number; gid: number };
    const odd = ids
      .map((id, i) => ({ id, server: everyone[i] as Server }))
      .filter(({ id }) => id.uid !== first.uid || id.gid !== first.gid);
    if (odd.length > 0) {
      const all = ids.map((id, i) => `${everyone[i]?.name}=${id.uid}:${id.gid}`).join(', ');
      throw permanentFailure(
        FailureType.UidGidMismatch,
        `the aegir uid:gid differs between pack members (${all}); NFS permissions would break. Make them equal, then retry.`,
      );
    }

    step = 'export the share';
    progress.phase(step);
    progress.node(share.server.name, 'running', step);
    const exported = await quick.inspectExport({ share, packName: group.name });
    if (!exported.present) {
      saga.add('remove export', () => undo.removeExport({ share, packName: group.name }), { on: share.server.name });
    }
    await quick.ensureExport({ share, packName: group.name });
    progress.node(share.server.name, 'done', 'exporting');

    step = 'mount on every slave';
    progress.phase(step);
    await allBounded(slaves, limit, async (slave) => {
      progress.node(slave.name, 'running', step);
      const state = await quick.inspectShareMount({ slave, share, packName: group.name });
      if (!state.mounted || !state.fstab) {
        saga.add(`unmount on ${slave.name}`, () => undo.removeShareMount({ slave, share, packName: group.name }), {
          on: slave.name,
        });
      }
      await quick.ensureShareMount({ slave, share, packName: group.name });
    });

    step = 'sentinel visible on every slave';
    progress.phase(step);
    const token = workflowInfo().runId;
    await quick.writeSentinel({ server: share.server, dir: share.exportPath, token });
    const nfsReadable: string[] = [];
    await allBounded(slaves, limit, async (slave) => {
      const seen = await probe.checkSentinel({ server: slave, dir: share.exportPath, token });
      if (!seen.visible) {
        throw permanentFailure(
          FailureType.ShareNotVisible,
          `${slave.name} does not see the sentinel written on ${share.server.name}: ${seen.detail}`,
        );
      }
      if (share.server.nfs) {
        const nfs = await probe.checkNfsExport({ server: slave, share });
        if (!nfs.ok) {
          throw permanentFailure(FailureType.ShareNotVisible, `${slave.name}: ${nfs.detail}`);
        }
        nfsReadable.push(slave.name);
      }
      progress.node(slave.name, 'done', 'share mounted and readable');
    });
    progress.phase('done');
    return {
      pack: group.name,
      exportedBy: share.server.name,
      mountedOn: slaves.map((s) => s.name),
      ids: first,
      nfsReadable,
    };
  } catch (err) {
    progress.phase(`failed at "${step}", compensating`);
    throw failedAfterCompensation(step, err, await saga.compensate());
  }
}
