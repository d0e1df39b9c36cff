/**
 * SetupPackShare and TeardownPackShare: the NFS share through which a pack's slaves read the master's platforms.
 */
import { badInput, FailureType, permanentFailure } from '../common/failures';
import { ApplicationFailure, isCancellation, workflowInfo } from '@temporalio/workflow';
import type { SetupPackShareInput, TeardownPackShareInput } from '../domain/operations';
import { ipv4InSubnet } from '../domain/fields';
import type { Server } from '../domain/model';
import { quick, probe, undo } from './activity-stubs';
import { allBounded } from '../common/settle';
import { compensatedPhase, failedAfterCompensation } from './failures';
import { expectGroup, parallelism, shareReaders } from './group';
import { Progress } from './progress';
import { Saga } from './saga';
import { tagRun } from './search';
import { tearDownShare } from './share-teardown';

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
  // The export names each slave; `clients` is the network they must be on, so a typo in an address cannot export
  // the platforms somewhere else.
  for (const slave of slaves) {
    const address = slave.address ?? slave.host;
    if (ipv4InSubnet(address, share.clients) === false) {
      throw badInput(
        `pack.share.clients: slave ${slave.name} (${address}) is outside ${share.clients}; the share is exported ` +
          'only to slaves on that network. Fix the address or the subnet, then retry.',
      );
    }
  }
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
    await quick.ensureExport({
      share,
      packName: group.name,
      slaveAddresses: slaves.map((s) => s.address ?? s.host),
    });
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
    progress.phase(`${isCancellation(err) ? 'cancelled' : 'failed'} at "${step}", compensating`);
    const failures = await saga.compensate();
    progress.phase(compensatedPhase(step, err, failures));
    throw failedAfterCompensation(step, err, failures);
  }
}

export interface PackShareTeardownResult {
  pack: string;
  /** Slaves whose mount, fstab line, sshfs key, its authorisation and pinned host key are gone. */
  unmountedFrom: string[];
  /** The share server whose export block (and sitefleet's files in the export) are gone. */
  exportRemovedFrom: string;
  /** Whether anything was there to remove. */
  changed: boolean;
}

/**
 * Undoes SetupPackShare: on every slave the mount, its fstab line and (sshfs) the slave's pack key, its
 * authorisation on the share server and the pinned host key; then the export block on the share server and the
 * files sitefleet wrote into the export. Refused while platforms are on the pack, unless `force`: their slaves
 * would stop serving them. Every step is idempotent; a slave that cannot be reached fails the run after the other
 * slaves were done, and the export stays (so that reachable slaves are not left mounting a removed export, nor
 * an unreached one): run it again. Nothing is compensated: undoing a teardown would be a setup.
 */
export async function TeardownPackShare(input: TeardownPackShareInput): Promise<PackShareTeardownResult> {
  const group = input.pack;
  expectGroup(group, 'pack');
  const share = group.share;
  if (!share) throw badInput('pack.share: a pack needs a share');
  if (!Array.isArray(input.platforms)) throw badInput('platforms: must be a list of platform names');
  if (input.platforms.length > 0 && input.force !== true) {
    throw ApplicationFailure.create({
      type: 'Refused',
      message:
        `pack ${group.name} still has platforms (${input.platforms.join(', ')}): its slaves serve them through the ` +
        'share. Delete them first, or force the teardown (force: true; sitefleet teardown-share --force).',
      nonRetryable: true,
    });
  }
  const slaves = shareReaders(group);
  const everyone: Server[] = [...slaves, share.server];
  tagRun({ group, servers: everyone.map((s) => s.name) });
  const progress = new Progress(
    'TeardownPackShare',
    everyone.map((s) => s.name),
  );
  const changed = await tearDownShare({
    share,
    packName: group.name,
    readers: slaves,
    mountInput: (slave) => ({ slave, share, packName: group.name }),
    parallelism: parallelism(group),
    progress,
    words: { share: 'share', shareOf: `share of pack ${group.name}`, reader: 'slave' },
  });
  return {
    pack: group.name,
    unmountedFrom: slaves.map((s) => s.name),
    exportRemovedFrom: share.server.name,
    changed,
  };
}
