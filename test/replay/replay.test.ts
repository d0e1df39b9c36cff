import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { Worker } from '@temporalio/worker';
import { temporal } from '@temporalio/proto';
import * as workflows from '../../workflows';
import { HISTORY_DIR } from '../support/record-history';
import { workflowBundle } from '../support/worker';

const files = readdirSync(HISTORY_DIR).filter((f) => f.endsWith('.pb')).sort();

describe('replay of recorded histories against the current workflow code', () => {
  test('every workflow type has at least one recorded history', () => {
    const recorded = new Set(files.map((f) => f.split('--')[0]));
    const missing = Object.keys(workflows).filter((type) => !recorded.has(type));
    assert.deepEqual(missing, [], `record histories (SITEFLEET_RECORD_HISTORIES=1 npm test) for: ${missing.join(', ')}`);
  });

  test('every recorded history replays without a determinism error', async () => {
    assert.ok(files.length > 0, 'there are recorded histories');
    const histories = files.map((f) => ({
      workflowId: f,
      history: temporal.api.history.v1.History.decode(readFileSync(join(HISTORY_DIR, f))),
    }));
    const failures: string[] = [];
    for await (const result of Worker.runReplayHistories({ workflowBundle: await workflowBundle() }, histories)) {
      if (result.error) failures.push(`${result.workflowId}: ${result.error.message}`);
    }
    assert.deepEqual(failures, []);
  });
});
