/**
 * A sitefleet worker in a process of its own, so that a reliability test can SIGKILL it (and every rsync and ssh
 * it started) in the middle of an operation, as a crash would:
 *
 *   node --import tsx test/reliability/worker-child.ts --address 127.0.0.1:7233 --task-queue Q --bundle FILE
 *
 * Started by `startWorkerProcess` (test/support/reliability.ts), which reads everything it prints. It uses the
 * production worker factory (workers/worker.ts) with a prebuilt workflow bundle, tells its parent `ready` over IPC
 * once it polls, stops on SIGTERM or when its parent goes away. The worker secret comes from SITEFLEET_SECRET_FILE,
 * as for any worker.
 */
import { parseArgs } from 'node:util';
import { NativeConnection } from '@temporalio/worker';
import { closeAllConnections } from '../../activities/ssh';
import { createSitefleetWorker } from '../../workers/worker';

export type WorkerChildMessage = { type: 'ready' } | { type: 'error'; message: string };

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
  if (!value) throw new Error(`--${name} is required (this process is started by test/support/reliability.ts)`);
  return value;
}

function tell(message: WorkerChildMessage): void {
  process.send?.(message);
}

async function main(): Promise<void> {
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
    // The test process died: do not outlive it.
    process.once('disconnect', () => {
      stop();
      setTimeout(() => process.exit(1), 10_000).unref();
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
    console.error(`reliability worker failed: ${message}`);
    process.exit(1);
  },
);
