/**
 * `npm run setup`:
 * - without arguments: makes sure the Temporal CLI (dev server and Web UI) is present, installing it with Go;
 * - `npm run setup -- --temporal host:port [--namespace NAME] [--retention-days N]`: prepares an existing Temporal
 *   server for sitefleet: creates the namespace if missing and registers sitefleet's search attributes
 *   (idempotent). docker-compose's temporal-setup service runs the compiled form (dist/js/devserver/setup-main.js).
 *
 * TEMPORAL_NAMESPACE is the default of --namespace. Only --temporal switches modes: a plain `npm run setup` never
 * touches a server.
 */
import { parseArgs } from 'node:util';
import { Connection } from '@temporalio/client';
import { ensureTemporalCli, temporalCliVersion } from './temporal-cli';
import { setupNamespace } from './namespace-setup';

const USAGE = 'usage: npm run setup [-- --temporal host:port [--namespace NAME] [--retention-days N]]';

async function waitForFrontend(address: string, timeoutMs: number): Promise<Connection> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  let said = false;
  while (Date.now() < deadline) {
    try {
      const connection = await Connection.connect({ address, connectTimeout: '5s' });
      await connection.workflowService.getSystemInfo({});
      return connection;
    } catch (err) {
      last = err;
      if (!said) console.log(`setup: waiting for the Temporal frontend at ${address}...`);
      said = true;
      await new Promise((r) => setTimeout(r, 1000));
    }
  }
  throw new Error(`setup: no Temporal frontend answered at ${address} within ${timeoutMs / 1000} s: ${String(last)}`);
}

async function main(): Promise<void> {
  const { values, positionals } = parseArgs({
    options: {
      temporal: { type: 'string' },
      namespace: { type: 'string' },
      'retention-days': { type: 'string' },
      'wait-seconds': { type: 'string' },
      help: { type: 'boolean' },
    },
    allowPositionals: true,
  });
  if (values.help) return void console.log(USAGE);
  if (positionals.length > 0) throw new Error(`unexpected argument "${positionals[0]}"\n${USAGE}`);
  if (values.temporal === undefined) {
    if (values.namespace !== undefined || values['retention-days'] !== undefined) {
      throw new Error(`--namespace and --retention-days need --temporal host:port\n${USAGE}`);
    }
    const path = await ensureTemporalCli();
    console.log(`${path} (${temporalCliVersion(path)})`);
    return;
  }
  const address = values.temporal;
  if (!/^[A-Za-z0-9.-]+:\d{1,5}$/.test(address) && !/^\[[0-9a-fA-F:]+\]:\d{1,5}$/.test(address)) {
    throw new Error(`--temporal "${address}": must be host:port (for example 127.0.0.1:7233)`);
  }
  const namespace = values.namespace ?? process.env.TEMPORAL_NAMESPACE ?? 'default';
  if (!/^[A-Za-z0-9][A-Za-z0-9._-]{1,254}$/.test(namespace)) {
    throw new Error(`--namespace "${namespace}": 2-255 characters, letters, digits, ".", "_" or "-"`);
  }
  const retentionRaw = values['retention-days'] ?? '30';
  const retentionDays = Number(retentionRaw);
  if (!Number.isInteger(retentionDays) || retentionDays < 1 || retentionDays > 3650) {
    throw new Error(`--retention-days "${retentionRaw}": a whole number of days, 1 to 3650`);
  }
  const waitRaw = values['wait-seconds'] ?? '120';
  const waitSeconds = Number(waitRaw);
  if (!Number.isInteger(waitSeconds) || waitSeconds < 0) {
    throw new Error(`--wait-seconds "${waitRaw}": a whole number of seconds`);
  }
  const connection = await waitForFrontend(address, waitSeconds * 1000);
  try {
    await setupNamespace(connection, namespace, { retentionDays, timeoutMs: Math.max(waitSeconds, 10) * 1000 });
  } finally {
    await connection.close();
  }
}

main().catch((err: unknown) => {
  console.error(err instanceof Error ? err.message : err);
  process.exit(1);
});
