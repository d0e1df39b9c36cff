/**
 * SetupClusterUploads and TeardownClusterUploads: the share that holds a cluster's uploads (files/ and private/
 * of every site), exported by a files server and mounted on every member at `<aegirRoot>/shared/<cluster>`.
 * The same machinery as a pack's share (activities/nfs-export.ts, nfs-mount.ts), with the cluster's own marker
 * (`sitefleet:pack:<cluster>-uploads`) and mount point.
 */
import { badInput, FailureType, permanentFailure } from '../common/failures';
import { ApplicationFailure, isCancellation } from '@temporalio/workflow';
import type { SetupClusterUploadsInput, TeardownClusterUploadsInput, WebGroup } from '../domain/operations';
import type { PackShare } from '../domain/operations';
import type { Server } from '../domain/model';
import { uploadsMountPoint, uploadsShareName } from '../domain/paths';
import { quick, probe, undo } from './activity-stubs';
import { allBounded } from '../common/settle';
import { compensatedPhase, failedAfterCompensation } from './failures';
import { expectGroup, parallelism } from './group';
import { Progress } from './progress';
import { Saga } from './saga';
import { tagRun } from './search';
import { tearDownShare } from './share-teardown';

export interface ClusterUploadsResult {
  cluster: string;
  exportedBy: string;
  exportPath: string;
  mountedOn: string[];
  ids: { uid: number; gid: number; webGid: number };
  /** Members that read a fresh marker, written on the files server, through their mount. */
  readable: string[];
}

function uploadsOf(group: WebGroup): PackShare {
  expectGroup(group, 'cluster');
  if (!group.uploads) throw badInput(`cluster.uploads: cluster ${group.name} has no uploads share`);
  return group.uploads;
}

function mountInput(group: WebGroup, share: PackShare, member: Server) {
  return {
    slave: member,
    share,
    packName: uploadsShareName(group.name),
    mountPoint: uploadsMountPoint(member, group.name),
    groupWritable: true,
  };
}

/**
 * Guarantees: the aegir uid:gid and the www-data gid are the same on every member and the files server (else
 * nothing changes); the export exists once; every member other than the files server mounts it now and at boot;
 * each of them reads a fresh marker written on the files server through its mount. On failure, the export, fstab
 * lines and mounts made by this run are removed. Idempotent.
 */
export async function SetupClusterUploads(input: SetupClusterUploadsInput): Promise<ClusterUploadsResult> {
  const group = input.cluster;
  const share = uploadsOf(group);
  const readers = group.members.filter((m) => m.name !== share.server.name);
  const everyone: Server[] = [...readers, share.server];
  tagRun({ group, servers: everyone.map((s) => s.name) });
  const limit = parallelism(group);
  const progress = new Progress(
    'SetupClusterUploads',
    everyone.map((s) => s.name),
  );
  const saga = new Saga();
  const packName = uploadsShareName(group.name);
  let step = 'uid/gid parity';
  try {
    progress.phase(step);
    const ids = await allBounded(everyone, limit, (server) => quick.readUploadIds({ server }));
    const first = ids[0] as { uid: number; gid: number; webGid: number };
    if (ids.some((id) => id.uid !== first.uid || id.gid !== first.gid || id.webGid !== first.webGid)) {
      const all = ids.map((id) => `${id.server}=${id.uid}:${id.gid}/www-data:${id.webGid}`).join(', ');
      throw permanentFailure(
        FailureType.UidGidMismatch,
        `the aegir uid:gid or the www-data gid differs between the members and the files server (${all}); uploads ` +
          'written through one member would not be writable through another. Make them equal, then retry.',
      );
    }

    step = 'export the uploads share';
    progress.phase(step);
    progress.node(share.server.name, 'running', step);
    const exported = await quick.inspectExport({ share, packName });
    if (!exported.present) {
      saga.add('remove export', () => undo.removeExport({ share, packName }), { on: share.server.name });
    }
    await quick.ensureExport({ share, packName });
    progress.node(share.server.name, 'done', 'exporting');

    step = 'mount on every member';
    progress.phase(step);
    await allBounded(readers, limit, async (member) => {
      progress.node(member.name, 'running', step);
      const mount = mountInput(group, share, member);
      const state = await quick.inspectShareMount(mount);
      if (!state.mounted || !state.fstab) {
        saga.add(`unmount on ${member.name}`, () => undo.removeShareMount(mount), { on: member.name });
      }
      await quick.ensureShareMount(mount);
    });

    step = 'read through every mount';
    progress.phase(step);
    const readable: string[] = [];
    await allBounded(readers, limit, async (member) => {
      const read = await probe.checkShareRead(mountInput(group, share, member));
      if (!read.ok)
        throw permanentFailure(FailureType.ShareNotVisible, `${member.name} (${read.state}): ${read.detail}`);
      readable.push(member.name);
      progress.node(member.name, 'done', 'uploads share mounted and readable');
    });
    progress.phase('done');
    return {
      cluster: group.name,
      exportedBy: share.server.name,
      exportPath: share.exportPath,
      mountedOn: readers.map((m) => m.name),
      ids: first,
      readable: readable.sort(),
    };
  } catch (err) {
    progress.phase(`${isCancellation(err) ? 'cancelled' : 'failed'} at "${step}", compensating`);
    const failures = await saga.compensate();
    progress.phase(compensatedPhase(step, err, failures));
    throw failedAfterCompensation(step, err, failures);
  }
}

export interface ClusterUploadsTeardownResult {
  cluster: string;
  unmountedFrom: string[];
  exportRemovedFrom: string;
  changed: boolean;
}

/**
 * Undoes SetupClusterUploads: the mount, fstab line and sshfs key on every member, then the export block. The
 * uploads themselves stay in the export directory on the files server (only sitefleet's check markers go): a
 * teardown never deletes a site's files. Refused while sites are on the cluster unless `force` (their links would
 * point at nothing). A member that cannot be reached fails the run after the others, and the export stays.
 */
export async function TeardownClusterUploads(
  input: TeardownClusterUploadsInput,
): Promise<ClusterUploadsTeardownResult> {
  const group = input.cluster;
  const share = uploadsOf(group);
  if (!Array.isArray(input.sites)) throw badInput('sites: must be a list of site domains');
  if (input.sites.length > 0 && input.force !== true) {
    throw ApplicationFailure.create({
      type: 'Refused',
      message:
        `cluster ${group.name} still has sites (${input.sites.join(', ')}): their uploads are served through the ` +
        'share. Delete them first, or force the teardown (force: true).',
      nonRetryable: true,
    });
  }
  const readers = group.members.filter((m) => m.name !== share.server.name);
  tagRun({ group, servers: [...readers, share.server].map((s) => s.name) });
  const progress = new Progress(
    'TeardownClusterUploads',
    [...readers, share.server].map((s) => s.name),
  );
  const packName = uploadsShareName(group.name);
  const changed = await tearDownShare({
    share,
    packName,
    readers,
    mountInput: (member) => mountInput(group, share, member),
    parallelism: parallelism(group),
    progress,
    words: { share: 'uploads share', shareOf: `uploads share of cluster ${group.name}`, reader: 'member' },
  });
  return {
    cluster: group.name,
    unmountedFrom: readers.map((m) => m.name),
    exportRemovedFrom: share.server.name,
    changed,
  };
}
