/**
 * Runs the API: opens the inventory, connects to Temporal at settings.temporalAddress, loads (or on first start
 * generates and prints once) the API token, listens on settings.apiHost:apiPort, and keeps operation statuses
 * (and the inventory changes they imply) up to date in the background.
 *
 * `tsx api/main.ts`, or `startApi()` from another entry point (scripts/start.ts).
 */
import { Client, Connection } from '@temporalio/client';
import type { AddressInfo } from 'node:net';
import type { Server } from 'node:http';
import pino, { type Logger } from 'pino';
import { loadSettings, type Settings } from '../config/settings';
import { sitefleetDataConverter } from '../codec/data-converter';
import { inventoryLocation, openInventoryStore } from '../inventory/open-store';
import { loadOrCreateToken } from './auth';
import { createApi } from './app';

export interface RunningApi {
  url: string;
  server: Server;
  close(): Promise<void>;
}

/** How often operations still running are checked in the background. @default 5000 */
const REFRESH_INTERVAL_MS = 5_000;

export async function startApi(
  settings: Settings = loadSettings(),
  log: Logger = pino({ name: 'sitefleet-api' }),
): Promise<RunningApi> {
  const store = await openInventoryStore(settings);
  const { token, created } = loadOrCreateToken(settings.tokenFile);
  if (created) {
    // Printed once, on creation: the file keeps it for the CLI on this machine.
    process.stdout.write(
      `sitefleet API token (stored in ${settings.tokenFile}, mode 0600; shown only this once):\n${token}\n`,
    );
  }
  const connection = await Connection.connect({ address: settings.temporalAddress }).catch(async (err: unknown) => {
    await store.close();
    throw err;
  });
  const client = new Client({
    connection,
    namespace: settings.namespace,
    dataConverter: sitefleetDataConverter(settings),
  });
  const { app, operations } = createApi({ store, client, settings, token, log });

  const server = await new Promise<Server>((resolve, reject) => {
    // Express 5 calls back with the error when listening fails (port taken, address missing).
    const s = app.listen(settings.apiPort, settings.apiHost, (err?: Error) => (err ? reject(err) : resolve(s)));
  }).catch(async (err: unknown) => {
    await connection.close();
    await store.close();
    throw new Error(`cannot listen on ${settings.apiHost}:${settings.apiPort}: ${(err as Error).message}`);
  });
  const { port } = server.address() as AddressInfo;
  const url = `http://${settings.apiHost}:${port}`;
  log.info(
    { url, temporal: settings.temporalAddress, inventory: inventoryLocation(settings) },
    'sitefleet API listening',
  );

  let refreshing = false;
  const timer = setInterval(() => {
    if (refreshing) return;
    refreshing = true;
    operations
      .refreshRunning()
      .catch((err: unknown) => log.warn({ err }, 'operation refresh failed'))
      .finally(() => {
        refreshing = false;
      });
  }, REFRESH_INTERVAL_MS);
  timer.unref();

  return {
    url,
    server,
    async close() {
      clearInterval(timer);
      await new Promise<void>((resolve) => server.close(() => resolve()));
      await connection.close();
      await store.close();
    },
  };
}

if (require.main === module) {
  const log = pino({ name: 'sitefleet-api' });
  startApi(loadSettings(), log).then(
    (api) => {
      const stop = (signal: string) => {
        log.info({ signal }, 'shutting down');
        api.close().then(
          () => process.exit(0),
          (err: unknown) => {
            log.error({ err }, 'shutdown failed');
            process.exit(1);
          },
        );
      };
      process.once('SIGINT', () => stop('SIGINT'));
      process.once('SIGTERM', () => stop('SIGTERM'));
    },
    (err: unknown) => {
      log.error({ err }, 'sitefleet API failed to start');
      process.exit(1);
    },
  );
}
