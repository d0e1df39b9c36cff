/**
 * Worker process: `npm run worker`. Stops on SIGINT/SIGTERM after in-flight activities finish (shutdown grace time).
 */
import { NativeConnection } from '@temporalio/worker';
import { closeAllConnections } from '../activities/transport/ssh';
import { loadSettings } from '../config/settings';
import { checkNamespaceAt, NamespaceNotReadyError } from '../devserver/namespace-setup';
import { sitefleetDataConverter } from '../codec/data-converter';
import { loadWorkflowBundle } from './bundle';
import { installRuntimeMetrics } from '../metrics/runtime';
import { createSitefleetWorker } from './worker';

async function main(): Promise<void> {
  const settings = loadSettings();
  // Workflows set sitefleet's search attributes: without them every operation would fail on its first step.
  await checkNamespaceAt(settings.temporalAddress, settings.namespace);
  process.env.SITEFLEET_SECRET_FILE ??= settings.secretFile;
  // The runtime's exporter (the SDK's metrics and sitefleet's) must be installed before any connection is made.
  if (settings.metricsAddress) installRuntimeMetrics(settings.metricsAddress);
  const dataConverter = sitefleetDataConverter(settings);
  const connection = await NativeConnection.connect({ address: settings.temporalAddress });
  try {
    const worker = await createSitefleetWorker({
      connection,
      namespace: settings.namespace,
      taskQueue: settings.taskQueue,
      dataConverter,
      workflowBundle: loadWorkflowBundle(dataConverter),
    });
    console.log(`worker: polling task queue "${settings.taskQueue}" on ${settings.temporalAddress}`);
    await worker.run();
  } finally {
    await closeAllConnections();
    await connection.close();
  }
}

main().catch((err: unknown) => {
  console.error('worker failed:', err instanceof NamespaceNotReadyError ? err.message : err);
  process.exit(1);
});
