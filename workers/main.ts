/**
 * Worker process: `npm run worker`. Stops on SIGINT/SIGTERM after in-flight activities finish (shutdown grace time).
 */
import { NativeConnection } from '@temporalio/worker';
import { closeAllConnections } from '../activities/ssh';
import { loadSettings } from '../config/settings';
import { createSitefleetWorker } from './worker';

async function main(): Promise<void> {
  const settings = loadSettings();
  process.env.SITEFLEET_SECRET_FILE ??= settings.secretFile;
  const connection = await NativeConnection.connect({ address: settings.temporalAddress });
  try {
    const worker = await createSitefleetWorker({
      connection,
      namespace: settings.namespace,
      taskQueue: settings.taskQueue,
    });
    console.log(`worker: polling task queue "${settings.taskQueue}" on ${settings.temporalAddress}`);
    await worker.run();
  } finally {
    await closeAllConnections();
    await connection.close();
  }
}

main().catch((err: unknown) => {
  console.error('worker failed:', err);
  process.exit(1);
});
