/**
 * What sitefleet needs from a Temporal namespace, checked and created over the frontend's gRPC API (no CLI needed):
 * the namespace itself and the search attributes of domain/search-attributes.ts.
 *
 * - `setupNamespace`: creates what is missing (idempotent), then waits until a visibility query accepts every
 *   attribute, so a workflow started right after can use them. `npm run setup -- --temporal host:port` and
 *   docker-compose's temporal-setup service run it.
 * - `assertNamespaceReady`: what `npm start`, the worker and the API call before they run; it throws a message that
 *   names every missing attribute and the command that fixes it.
 */
import { Connection } from '@temporalio/client';
import { temporal } from '@temporalio/proto';
import { msToTs } from '@temporalio/common/lib/time';
import { ALL_SEARCH_ATTRIBUTES } from '../domain/search-attributes';

const IndexedValueType = temporal.api.enums.v1.IndexedValueType;

const WANTED_TYPE: Record<string, number> = {
  KEYWORD: IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD,
  KEYWORD_LIST: IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD_LIST,
  BOOL: IndexedValueType.INDEXED_VALUE_TYPE_BOOL,
};
const TYPE_NAME: Record<number, string> = Object.fromEntries(
  Object.entries(IndexedValueType).map(([name, value]) => [value, name.replace('INDEXED_VALUE_TYPE_', '')]),
);

/** The attributes sitefleet registers, name → Temporal's index type. */
export const SITEFLEET_SEARCH_ATTRIBUTES: { name: string; type: string; indexType: number }[] =
  ALL_SEARCH_ATTRIBUTES.map((key) => ({ name: key.name, type: key.type, indexType: WANTED_TYPE[key.type]! }));

/** gRPC NOT_FOUND, as the frontend reports an unknown namespace. */
function isNotFound(err: unknown): boolean {
  return (err as { code?: number }).code === 5;
}

export interface NamespaceState {
  exists: boolean;
  /** Attributes that are not registered. */
  missing: string[];
  /** Attributes registered with another type (name: found type). */
  wrongType: string[];
}

export async function inspectNamespace(connection: Connection, namespace: string): Promise<NamespaceState> {
  try {
    await connection.workflowService.describeNamespace({ namespace });
  } catch (err) {
    if (isNotFound(err)) {
      return { exists: false, missing: SITEFLEET_SEARCH_ATTRIBUTES.map((a) => a.name), wrongType: [] };
    }
    throw err;
  }
  const res = await connection.operatorService.listSearchAttributes({ namespace });
  const custom = (res.customAttributes ?? {}) as Record<string, number>;
  const missing: string[] = [];
  const wrongType: string[] = [];
  for (const attr of SITEFLEET_SEARCH_ATTRIBUTES) {
    const found = custom[attr.name];
    if (found === undefined) missing.push(attr.name);
    else if (found !== attr.indexType) wrongType.push(`${attr.name}: ${TYPE_NAME[found] ?? found}, needs ${attr.type}`);
  }
  return { exists: true, missing, wrongType };
}

/** The command that prepares the namespace, as the operator types it. */
export function setupCommand(address: string, namespace: string): string {
  return `npm run setup -- --temporal ${address}${namespace === 'default' ? '' : ` --namespace ${namespace}`}`;
}

/** The namespace lacks what sitefleet needs; the message says what and the command that fixes it. */
export class NamespaceNotReadyError extends Error {
  override name = 'NamespaceNotReadyError';
}

/** Throws unless the namespace exists with every sitefleet search attribute of the right type. */
export async function assertNamespaceReady(connection: Connection, address: string, namespace: string): Promise<void> {
  const state = await inspectNamespace(connection, namespace);
  const fix = `Run "${setupCommand(address, namespace)}" (idempotent) and start again.`;
  if (!state.exists) {
    throw new NamespaceNotReadyError(`Temporal at ${address} has no namespace "${namespace}". ${fix}`);
  }
  if (state.wrongType.length > 0) {
    throw new NamespaceNotReadyError(
      `Namespace "${namespace}" at ${address} has sitefleet search attributes of the wrong type (${state.wrongType.join('; ')}). ` +
        'Remove them (temporal operator search-attribute remove) and run the setup command: ' +
        setupCommand(address, namespace),
    );
  }
  if (state.missing.length > 0) {
    const list = state.missing
      .map((name) => `${name} (${SITEFLEET_SEARCH_ATTRIBUTES.find((a) => a.name === name)!.type})`)
      .join(', ');
    throw new NamespaceNotReadyError(
      `Namespace "${namespace}" at ${address} lacks the search attribute(s) ${list}. ${fix}`,
    );
  }
}

/** Connects, checks, closes: for processes that make their own (native) connection. */
export async function checkNamespaceAt(address: string, namespace: string): Promise<void> {
  const connection = await Connection.connect({ address, connectTimeout: '10s' });
  try {
    await assertNamespaceReady(connection, address, namespace);
  } finally {
    await connection.close();
  }
}

export interface SetupOptions {
  /** @default 30 days */
  retentionDays?: number;
  /** How long to wait for the namespace and attributes to become usable. @default 120000 */
  timeoutMs?: number;
  log?: (line: string) => void;
}

async function waitFor(what: string, timeoutMs: number, probe: () => Promise<boolean>): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  while (Date.now() < deadline) {
    try {
      if (await probe()) return;
    } catch (err) {
      last = err;
    }
    await new Promise((r) => setTimeout(r, 500));
  }
  throw new Error(`setup: gave up waiting for ${what} after ${timeoutMs / 1000} s${last ? `: ${String(last)}` : ''}`);
}

/**
 * Creates the namespace if missing and registers every missing search attribute; leaves what exists alone.
 * Returns what it changed.
 */
export async function setupNamespace(
  connection: Connection,
  namespace: string,
  opts: SetupOptions = {},
): Promise<{ createdNamespace: boolean; addedAttributes: string[] }> {
  const log = opts.log ?? ((line: string) => console.log(line));
  const timeoutMs = opts.timeoutMs ?? 120_000;
  let state = await inspectNamespace(connection, namespace);
  let createdNamespace = false;
  if (!state.exists) {
    const days = opts.retentionDays ?? 30;
    log(`setup: creating namespace ${namespace} (retention ${days} days)`);
    try {
      await connection.workflowService.registerNamespace({
        namespace,
        description: 'sitefleet operations',
        workflowExecutionRetentionPeriod: msToTs(`${days} days`),
      });
      createdNamespace = true;
    } catch (err) {
      // Another setup run created it meanwhile: fine.
      if ((err as { code?: number }).code !== 6) throw err;
    }
    // The frontend's namespace cache refreshes every few seconds.
    await waitFor(`namespace ${namespace}`, timeoutMs, async () => {
      state = await inspectNamespace(connection, namespace);
      return state.exists;
    });
  } else {
    log(`setup: namespace ${namespace} exists`);
  }
  if (state.wrongType.length > 0) {
    throw new Error(`setup: namespace ${namespace} has attributes of the wrong type: ${state.wrongType.join('; ')}`);
  }
  const toAdd = SITEFLEET_SEARCH_ATTRIBUTES.filter((a) => state.missing.includes(a.name));
  for (const attr of SITEFLEET_SEARCH_ATTRIBUTES) {
    if (!state.missing.includes(attr.name)) log(`setup: search attribute ${attr.name} exists`);
  }
  if (toAdd.length > 0) {
    log(`setup: registering search attribute(s) ${toAdd.map((a) => `${a.name} (${a.type})`).join(', ')}`);
    await connection.operatorService.addSearchAttributes({
      namespace,
      searchAttributes: Object.fromEntries(toAdd.map((a) => [a.name, a.indexType])),
    });
  }
  // Registered is not yet queryable everywhere: wait until visibility accepts each attribute in a query.
  for (const attr of SITEFLEET_SEARCH_ATTRIBUTES) {
    await waitFor(`search attribute ${attr.name} to be queryable`, timeoutMs, async () => {
      // A value of the attribute's own type: PostgreSQL visibility refuses a string for a Bool.
      const probe = attr.type === 'BOOL' ? 'true' : `'setup-probe'`;
      await connection.workflowService.countWorkflowExecutions({ namespace, query: `${attr.name} = ${probe}` });
      return true;
    });
  }
  log(`setup: namespace ${namespace} is ready for sitefleet`);
  return { createdNamespace, addedAttributes: toAdd.map((a) => a.name) };
}
