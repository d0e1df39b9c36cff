/**
 * A real sitefleet worker on a test Temporal server, sharing one workflow bundle per test file.
 */
import { bundleWorkflowCode, type Worker } from '@temporalio/worker';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { SITEFLEET_WORKFLOW_INTERCEPTOR_MODULES, sitefleetWebpackConfig } from '../../workers/bundler-options';
import { createSitefleetWorker } from '../../workers/worker';

let bundle: Promise<{ code: string }> | undefined;

/** Bundles workflows/ once per process (about a second). */
export function workflowBundle(): Promise<{ code: string }> {
  bundle ??= bundleWorkflowCode({
    workflowsPath: require.resolve('../../workflows'),
    webpackConfigHook: sitefleetWebpackConfig(),
    workflowInterceptorModules: SITEFLEET_WORKFLOW_INTERCEPTOR_MODULES,
    logger: undefined,
  });
  return bundle;
}

export interface RunningWorker {
  worker: Worker;
  taskQueue: string;
  /** Stops the worker and waits for it to finish. */
  stop(): Promise<void>;
}

/** Starts a worker polling its own task queue; call `stop()` in `after`. */
export async function startTestWorker(
  env: TestWorkflowEnvironment,
  taskQueue = `test-${process.pid}-${Date.now()}`,
): Promise<RunningWorker> {
  const worker = await createSitefleetWorker({
    connection: env.nativeConnection,
    namespace: env.namespace ?? 'default',
    taskQueue,
    workflowBundle: await workflowBundle(),
    shutdownGraceTime: '5s',
  });
  const running = worker.run();
  return {
    worker,
    taskQueue,
    async stop() {
      if (worker.getState() === 'RUNNING') worker.shutdown();
      await running;
    },
  };
}
