/**
 * Records a finished workflow's history for the replay test (test/replay), when SITEFLEET_RECORD_HISTORIES=1.
 * Recorded files are committed: replaying them against the current code catches determinism breaks.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { temporal } from '@temporalio/proto';
import type { WorkflowHandle } from '@temporalio/client';

export const HISTORY_DIR = join(__dirname, '..', 'replay', 'histories');

export async function recordHistory(handle: WorkflowHandle, workflowType: string, label: string): Promise<void> {
  if (process.env.SITEFLEET_RECORD_HISTORIES !== '1') return;
  const history = await handle.fetchHistory();
  // Binary protobuf: exact, and independent of the JSON mapping's version quirks.
  writeFileSync(
    join(HISTORY_DIR, `${workflowType}--${label}.pb`),
    temporal.api.history.v1.History.encode(history).finish(),
  );
}
