/**
 * The sitefleet worker: every workflow and activity on one task queue.
 */
import type { DataConverter } from '@temporalio/common';
import { NativeConnection, Worker, type WorkerOptions } from '@temporalio/worker';
import * as activities from '../activities';
import { removeStaleControlDirs } from '../activities/transport/rsync';
import { SITEFLEET_WORKFLOW_INTERCEPTOR_MODULES, sitefleetWebpackConfig } from './bundler-options';

export interface SitefleetWorkerOptions {
  connection: NativeConnection;
  namespace?: string;
  taskQueue: string;
  /** A prebuilt bundle (production); without it the workflows are bundled at start (~1 s). */
  workflowBundle?: WorkerOptions['workflowBundle'];
  /**
   * How long in-flight rsync and ssh work may run on after SIGTERM before it is cancelled.
   * @default '60s'
   */
  shutdownGraceTime?: WorkerOptions['shutdownGraceTime'];
  /** Payload encryption (codec/data-converter.ts); absent: payloads stay plain. */
  dataConverter?: DataConverter;
  /** @default 32 */
  maxConcurrentActivityTaskExecutions?: number;
  /**
   * Running workflows kept in memory between their tasks (others are replayed from history when they next run).
   * Set here rather than derived by the SDK from the heap limit, which under WORKER_NODE_OPTIONS
   * (workers/node-options.ts) would be 10.
   * @default 200
   */
  maxCachedWorkflows?: number;
}

export async function createSitefleetWorker(opts: SitefleetWorkerOptions): Promise<Worker> {
  // A worker killed with SIGKILL left its OpenSSH control directory behind: remove those of dead processes.
  removeStaleControlDirs();
  return Worker.create({
    connection: opts.connection,
    namespace: opts.namespace ?? 'default',
    taskQueue: opts.taskQueue,
    ...(opts.workflowBundle
      ? { workflowBundle: opts.workflowBundle }
      : {
          workflowsPath: require.resolve('../workflows'),
          bundlerOptions: { webpackConfigHook: sitefleetWebpackConfig() },
          interceptors: { workflowModules: SITEFLEET_WORKFLOW_INTERCEPTOR_MODULES },
        }),
    activities,
    ...(opts.dataConverter ? { dataConverter: opts.dataConverter } : {}),
    shutdownGraceTime: opts.shutdownGraceTime ?? '60s',
    maxConcurrentActivityTaskExecutions: opts.maxConcurrentActivityTaskExecutions ?? 32,
    maxCachedWorkflows: opts.maxCachedWorkflows ?? 200,
  });
}
