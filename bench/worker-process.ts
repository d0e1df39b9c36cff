/**
 * The benchmark's sitefleet worker, in a process of its own so that its memory can be measured alone:
 * `node --import tsx bench/worker-process.ts`, started by bench/worker.ts with its settings in the environment
 * (BENCH_TEMPORAL_ADDRESS, BENCH_NAMESPACE, BENCH_TASK_QUEUE, BENCH_WORKFLOW_BUNDLE). It loads the prebuilt
 * workflow bundle, as production workers do, tells its parent `ready` over IPC and stops on SIGTERM.
 */
import { NativeConnection } from '@temporalio/worker';
import { closeAllConnections } from '../activities/ssh';
import { createSitefleetWorker } from '../workers/worker';

export type WorkerMessage =
  | { type: 'ready' }
  | { type: 'error'; message: string }
  | { type: 'memory'; usage: NodeJS.MemoryUsage };

/** The parent asks for `process.memoryUsage()` (where the resident memory is: JS heap, buffers, native). */
export type ParentMessage = { type: 'memory' };

function required(name: string): string {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set; this process is started by bench/worker.ts`);
  return value;
}

function tell(message: WorkerMessage): void {
  process.send?.(message);
}

async function main(): Promise<void> {
  // A parent that is gone before the worker runs (Ctrl-C during start-up) leaves nothing to stop: just leave.
  const orphaned = (): never => process.exit(0);
  process.once('disconnect', orphaned);
  const connection = await NativeConnection.connect({ address: required('BENCH_TEMPORAL_ADDRESS') });
  try {
    const worker = await createSitefleetWorker({
      connection,
      namespace: required('BENCH_NAMESPACE'),
      taskQueue: required('BENCH_TASK_QUEUE'),
      workflowBundle: { codePath: required('BENCH_WORKFLOW_BUNDLE') },
      shutdownGraceTime: '5s',
    });
    const stop = (): void => {
      if (worker.getState() === 'RUNNING') worker.shutdown();
    };
    process.once('SIGTERM', stop);
    process.once('SIGINT', stop);
    process.off('disconnect', orphaned);
    process.once('disconnect', stop);
    process.on('message', (message: ParentMessage) => {
      if (message.type === 'memory') tell({ type: 'memory', usage: process.memoryUsage() });
    });
    const running = worker.run();
    tell({ type: 'ready' });
    await running;
  } finally {
    await closeAllConnections();
    await connection.close();
  }
}

main().then(
  () => process.exit(0),
  (error: unknown) => {
    const message = error instanceof Error ? (error.stack ?? error.message) : String(error);
    tell({ type: 'error', message });
    console.error(`bench worker failed: ${message}`);
    process.exit(1);
  },
);
