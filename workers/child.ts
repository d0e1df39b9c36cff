/**
 * A sitefleet worker run as the child of another process, which talks to it over IPC: the benchmark (to measure
 * its memory alone) and the reliability tests (to SIGKILL it mid-operation, as a crash would).
 *
 *   node dist/js/workers/child.js --address HOST:PORT --task-queue Q --bundle FILE [--namespace NS]
 *   node --import tsx workers/child.ts ...   (from the sources)
 *
 * It uses the production worker factory (workers/worker.ts) with a prebuilt workflow bundle and the worker secret
 * from SITEFLEET_SECRET_FILE, as any worker; tells its parent `ready` once it polls (or `error`), answers `memory`
 * with process.memoryUsage(), and stops on SIGTERM, SIGINT or when its parent goes away.
 */
import { parseArgs } from 'node:util';
import { NativeConnection } from '@temporalio/worker';
import { closeAllConnections } from '../activities/transport/ssh';
import { createSitefleetWorker } from './worker';

export type ChildWorkerMessage =
  | { type: 'ready' }
  | { type: 'error'; message: string }
  | { type: 'memory'; usage: NodeJS.MemoryUsage };

/** What the parent may ask: `process.memoryUsage()` (where the resident memory is: JS heap, buffers, native). */
export type ChildWorkerRequest = { type: 'memory' };

const { values } = parseArgs({
  options: {
    address: { type: 'string' },
    namespace: { type: 'string', default: 'default' },
    'task-queue': { type: 'string' },
    bundle: { type: 'string' },
  },
});

function required(name: 'address' | 'task-queue' | 'bundle'): string {
  const value = values[name];
  if (!value) throw new Error(`--${name} is required (this process is started by a parent over IPC)`);
  return value;
}

function tell(message: ChildWorkerMessage): void {
  process.send?.(message);
}

async function main(): Promise<void> {
  // A parent that is gone before the worker runs (Ctrl-C during start-up) leaves nothing to stop: just leave.
  const orphaned = (): never => process.exit(1);
  process.once('disconnect', orphaned);
  const connection = await NativeConnection.connect({ address: required('address') });
  try {
    const worker = await createSitefleetWorker({
      connection,
      namespace: values.namespace,
      taskQueue: required('task-queue'),
      workflowBundle: { codePath: required('bundle') },
      shutdownGraceTime: '5s',
    });
    const stop = (): void => {
      if (worker.getState() === 'RUNNING') worker.shutdown();
    };
    process.once('SIGTERM', stop);
    process.once('SIGINT', stop);
    process.off('disconnect', orphaned);
    // The parent died: do not outlive it.
    process.once('disconnect', () => {
      stop();
      setTimeout(() => process.exit(1), 10_000).unref();
    });
    process.on('message', (message: ChildWorkerRequest) => {
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
    console.error(`worker failed: ${message}`);
    process.exit(1);
  },
);
