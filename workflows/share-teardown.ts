/**
 * The teardown both shares run (a pack's platforms share, TeardownPackShare; a cluster's uploads share,
 * TeardownClusterUploads): unmount on every reader, and only when every reader is done, remove the export.
 */
import { ApplicationFailure } from '@temporalio/workflow';
import type * as activities from '../activities';
import type { PackShare } from '../domain/operations';
import type { Server } from '../domain/model';
import { quick } from './activity-stubs';
import { settleBounded } from '../common/settle';
import { describeFailure } from './failures';
import type { Progress } from './progress';

type ShareMountInput = Parameters<typeof activities.removeShareMount>[0];

export interface ShareTeardown {
  share: PackShare;
  /** The share's owner in managed blocks and export names (removeExport's packName). */
  packName: string;
  readers: Server[];
  mountInput: (reader: Server) => ShareMountInput;
  parallelism: number;
  progress: Progress;
  /** How messages name things: `share of pack P` / `slave`, `uploads share of cluster C` / `member`. */
  words: { share: string; shareOf: string; reader: string };
}

/**
 * Unmounts the share on every reader; if any reader fails, fails (non-retryable) and keeps the export, so that a
 * second run finds it. Then removes the export.
 * @returns whether anything changed
 */
export async function tearDownShare(t: ShareTeardown): Promise<boolean> {
  const { progress, readers, share, words } = t;
  progress.phase(`unmount on every ${words.reader}`);
  const unmounted = await settleBounded(readers, t.parallelism, async (reader: Server) => {
    progress.node(reader.name, 'running', 'unmount, remove fstab line and keys');
    const r = await quick.removeShareMount(t.mountInput(reader));
    progress.node(reader.name, 'done', r.changed ? `${words.share} removed` : 'nothing to remove');
    return r;
  });
  const failures: string[] = [];
  unmounted.forEach((s, i) => {
    if (s.ok) return;
    const reader = readers[i] as Server;
    progress.node(reader.name, 'failed', 'not removed', describeFailure(s.error));
    failures.push(`${reader.name}: ${describeFailure(s.error)}`);
  });
  if (failures.length > 0) {
    progress.phase('failed');
    throw ApplicationFailure.create({
      type: 'OperationFailed',
      message:
        `the ${words.shareOf} could not be removed from every ${words.reader} (${failures.join('; ')}). ` +
        `The export on ${share.server.name} stays; run the teardown again once the ${words.reader}s answer.`,
      nonRetryable: true,
    });
  }
  progress.phase('remove the export');
  progress.node(share.server.name, 'running', 'remove the export');
  const exported = await quick.removeExport({ share, packName: t.packName });
  progress.node(share.server.name, 'done', exported.changed ? 'export removed' : 'no export to remove');
  progress.phase('done');
  return exported.changed || unmounted.some((s) => s.ok && s.value.changed);
}
