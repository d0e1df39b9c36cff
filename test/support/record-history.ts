/**
 * Records a finished workflow's history for the replay test (test/replay), when SITEFLEET_RECORD_HISTORIES=1.
 * Recorded files are committed: replaying them against the current code catches determinism breaks.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { historyToJSON } from '@temporalio/common/lib/proto-utils';
import type { WorkflowHandle } from '@temporalio/client';

export const HISTORY_DIR = join(__dirname, '..', 'replay', 'histories');

export async function recordHistory(handle: WorkflowHandle, workflowType: string, label: string): Promise<void> {
  if (process.env.SITEFLEET_RECORD_HISTORIES !== '1') return;
  const history = await handle.fetchHistory();
  writeFileSync(join(HISTORY_DIR, `${workflowType}--${label}.json`), historyToJSON(history));
}
