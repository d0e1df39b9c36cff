/**
 * End-to-end fixture: a test-host bed, a real Temporal dev server and a real sitefleet worker, with helpers to run
 * workflows against the bed's servers exactly as the API would.
 */
import { readFileSync } from 'node:fs';
import { after, before } from 'node:test';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import type { WorkflowHandle } from '@temporalio/client';
import { serverInventorySchema, type Server } from '../../domain/model';

export { clusterGroup } from '../../domain/operations';
import type { Bed } from '../../testbed';
import { closeAllConnections } from '../../activities/transport/ssh';
import { startTestBed, stopTestBed, type TestBedOptions } from './testbed';
import { startTestTemporal } from './temporal';
import { startTestWorker, type RunningWorker } from './worker';
import { recordHistory } from './record-history';

export interface Fleet {
  bed: Bed;
  env: TestWorkflowEnvironment;
  worker: RunningWorker;
  servers: Map<string, Server>;
  server(name: string): Server;
  /** Starts a workflow by type name on the worker's task queue and waits for its result. */
  run<T>(workflowType: string, workflowId: string, input: unknown): Promise<T>;
  start(workflowType: string, workflowId: string, input: unknown): Promise<WorkflowHandle>;
}

export function useFleet(bedOptions: TestBedOptions): () => Fleet {
  let fleet: Fleet | undefined;
  before(async () => {
    const [bed, env] = await Promise.all([startTestBed(bedOptions), startTestTemporal()]);
    const worker = await startTestWorker(env);
    const inventory = serverInventorySchema.parse(JSON.parse(readFileSync(bed.paths.inventoryFile, 'utf8')));
    const servers = new Map(inventory.servers.map((s) => [s.name, s]));
    const start = (workflowType: string, workflowId: string, input: unknown) =>
      env.client.workflow.start(workflowType, {
        taskQueue: worker.taskQueue,
        workflowId,
        args: [input],
        workflowIdConflictPolicy: 'FAIL',
      });
    fleet = {
      bed,
      env,
      worker,
      servers,
      server(name) {
        const s = servers.get(name);
        if (!s) throw new Error(`no server ${name} in the bed inventory`);
        return s;
      },
      start,
      async run<T>(workflowType: string, workflowId: string, input: unknown): Promise<T> {
        const handle = await start(workflowType, workflowId, input);
        try {
          return (await handle.result()) as T;
        } finally {
          await recordHistory(handle, workflowType, workflowId.replace(/[^a-z0-9.-]+/gi, '_'));
        }
      },
    };
  });
  after(async () => {
    if (!fleet) return;
    await fleet.worker.stop().catch(() => undefined);
    await closeAllConnections();
    await fleet.env.teardown().catch(() => undefined);
    await stopTestBed(fleet.bed);
  });
  return () => {
    if (!fleet) throw new Error('the fleet is not up: use it inside a test');
    return fleet;
  };
}
