/**
 * The backend-independent half of every inventory store: validation, the write decisions (what create, put,
 * remove and operation effects check, refuse and change), the row layout of each kind and the references that
 * tell who uses a resource. A backend supplies a consistent view of the inventory inside its write transaction
 * (`InventoryView`) and carries out the writes a plan returns, so that both backends refuse exactly the same
 * things with the same errors.
 *
 * Plans read synchronously. SQLite reads its file directly; an asynchronous backend (PostgreSQL) runs the plan
 * with `planAsync`, which loads what the plan asked for and replans until the plan read only loaded data.
 */
import { fieldErrors } from '../domain/fields';
import { checkResource, type InventoryReader } from './rules';
import {
  AlreadyExistsError,
  canonicalJson,
  ConflictError,
  InUseError,
  InvalidResourceError,
  keyOf,
  MissingReferenceError,
  NotFoundError,
  RESOURCE_KINDS,
  type Change,
  type OperationEffect,
  type OperationRecord,
  type OperationStatus,
  type ResourceKind,
  type Resources,
  type Use,
} from './store';

// ---- layout ----

/** The table of each kind and its key column. */
export const TABLES: Record<ResourceKind, { table: string; key: string }> = {
  server: { table: 'servers', key: 'name' },
  pack: { table: 'packs', key: 'name' },
  cluster: { table: 'clusters', key: 'name' },
  platform: { table: 'platforms', key: 'name' },
  site: { table: 'sites', key: 'domain' },
};

/** A column through which a resource of `kind` names another resource. */
interface Reference {
  kind: ResourceKind;
  table: string;
  /** The column holding the key of the resource that uses. */
  userKey: string;
  /** The column holding the key of the resource used. */
  column: string;
  role: Use['role'];
}

/** For each kind, every column that can name a resource of that kind. */
export const REFERENCES: Record<ResourceKind, Reference[]> = {
  server: [
    { kind: 'pack', table: 'packs', userKey: 'name', column: 'master', role: 'master' },
    { kind: 'pack', table: 'pack_slaves', userKey: 'pack', column: 'server', role: 'slave' },
    { kind: 'pack', table: 'packs', userKey: 'name', column: 'share_server', role: 'share' },
    { kind: 'cluster', table: 'cluster_members', userKey: 'cluster', column: 'server', role: 'member' },
    { kind: 'cluster', table: 'clusters', userKey: 'name', column: 'load_balancer', role: 'loadBalancer' },
    { kind: 'platform', table: 'platforms', userKey: 'name', column: 'target_server', role: 'target' },
    { kind: 'site', table: 'sites', userKey: 'domain', column: 'db_server', role: 'dbServer' },
  ],
  pack: [{ kind: 'platform', table: 'platforms', userKey: 'name', column: 'target_pack', role: 'target' }],
  cluster: [{ kind: 'platform', table: 'platforms', userKey: 'name', column: 'target_cluster', role: 'target' }],
  platform: [{ kind: 'site', table: 'sites', userKey: 'domain', column: 'platform', role: 'platform' }],
  site: [],
};

/**
 * One query listing every use of the resource of `kind` whose key is bound to `param` (`@key` for SQLite, `$1`
 * for PostgreSQL), as rows `{ ord, k }` in a stable order; `usesFromRows` turns them into uses.
 * @returns undefined when nothing can use a resource of this kind
 */
export function usesSql(kind: ResourceKind, param: string): string | undefined {
  const refs = REFERENCES[kind];
  if (refs.length === 0) return undefined;
  return (
    refs
      .map((r, i) => `SELECT ${i} AS ord, ${r.userKey} AS k FROM ${r.table} WHERE ${r.column} = ${param}`)
      .join(' UNION ALL ') + ' ORDER BY ord, k'
  );
}

export function usesFromRows(kind: ResourceKind, rows: { ord: number; k: string }[]): Use[] {
  return rows.map((row) => {
    const ref = REFERENCES[kind][row.ord];
    if (!ref) throw new Error(`uses query of ${kind} returned an unknown reference ${row.ord}`);
    return { kind: ref.kind, key: row.k, role: ref.role };
  });
}

/** How one resource is stored: its row (key, key columns and document) and the child rows listing its members. */
export interface RowLayout {
  table: string;
  keyColumn: string;
  key: string;
  /** Key columns other than the key, in a fixed order. */
  columns: Record<string, string | null>;
  /** Rows (parent, value) that a write replaces: pack slaves, cluster members, site hosts. */
  children?: { table: string; parentColumn: string; valueColumn: string; values: string[] };
}

export function rowOf<K extends ResourceKind>(kind: K, value: Resources[K]): RowLayout {
  const { table, key: keyColumn } = TABLES[kind];
  const key = keyOf(kind, value);
  const base = { table, keyColumn, key };
  switch (kind) {
    case 'server': {
      const s = value as Resources['server'];
      return { ...base, columns: { host: s.host } };
    }
    case 'pack': {
      const p = value as Resources['pack'];
      return {
        ...base,
        columns: { master: p.master, share_server: p.share.server },
        children: { table: 'pack_slaves', parentColumn: 'pack', valueColumn: 'server', values: p.slaves },
      };
    }
    case 'cluster': {
      const c = value as Resources['cluster'];
      return {
        ...base,
        columns: { load_balancer: c.loadBalancer ?? null },
        children: { table: 'cluster_members', parentColumn: 'cluster', valueColumn: 'server', values: c.members },
      };
    }
    case 'platform': {
      const { target } = value as Resources['platform'];
      return {
        ...base,
        columns: {
          target_kind: target.kind,
          target_name: target.name,
          target_server: target.kind === 'server' ? target.name : null,
          target_pack: target.kind === 'pack' ? target.name : null,
          target_cluster: target.kind === 'cluster' ? target.name : null,
        },
      };
    }
    case 'site': {
      const s = value as Resources['site'];
      return {
        ...base,
        columns: { platform: s.platform, db_server: s.dbServer ?? null, status: s.status },
        children: { table: 'site_hosts', parentColumn: 'site', valueColumn: 'host', values: [s.domain, ...s.aliases] },
      };
    }
  }
  throw new Error(`unknown resource kind ${String(kind)}`);
}

// ---- documents ----

/** Validates input with the kind's schema (defaults applied). @throws InvalidResourceError */
export function validate<K extends ResourceKind>(kind: K, input: unknown): Resources[K] {
  const parsed = RESOURCE_KINDS[kind].schema.safeParse(input);
  if (!parsed.success) throw new InvalidResourceError(fieldErrors(parsed.error));
  return parsed.data;
}

/** Validates the input of a put, whose key must be the one named by the caller (the URL). */
export function validatePut<K extends ResourceKind>(kind: K, key: string, input: unknown): Resources[K] {
  const value = validate(kind, input);
  const keyField = RESOURCE_KINDS[kind].key;
  if (keyOf(kind, value) !== key) {
    throw new InvalidResourceError([{ field: keyField, rule: `must be "${key}", the ${keyField} in the URL` }]);
  }
  return value;
}

/** A stored document (already parsed from JSON), validated again so that a schema change cannot go unnoticed. */
export function parseStored<K extends ResourceKind>(kind: K, key: string, doc: unknown): Resources[K] {
  const parsed = RESOURCE_KINDS[kind].schema.safeParse(doc);
  if (!parsed.success) {
    throw new Error(`stored ${kind} "${key}" no longer passes validation; a schema migration is missing`);
  }
  return parsed.data;
}

// ---- plans ----

/** What a plan may read: a consistent view of the inventory inside the writing transaction. */
export interface InventoryView extends InventoryReader {
  usesOf(kind: ResourceKind, key: string): Use[];
}

export type Write =
  | { type: 'upsert'; kind: ResourceKind; value: Resources[ResourceKind]; exists: boolean }
  | { type: 'delete'; kind: ResourceKind; key: string };

/**
 * The decision of a write operation: its result and the writes that carry it out, in order. A plan reads the view
 * and changes nothing; the writes of one plan never depend on one another's effect on the view.
 */
export interface Plan<T> {
  result: T;
  writes: Write[];
}

function checkRules<K extends ResourceKind>(kind: K, value: Resources[K], read: InventoryReader): void {
  const problems = checkResource(kind, value, read);
  if (problems.missing.length > 0) throw new MissingReferenceError(problems.missing);
  if (problems.invalid.length > 0) throw new InvalidResourceError(problems.invalid);
}

/** `read` as it would be with `value` stored under `kind`/`key`. */
function overlay(read: InventoryReader, kind: ResourceKind, key: string, value: unknown): InventoryReader {
  return {
    get: <K extends ResourceKind>(k: K, name: string): Resources[K] | undefined =>
      k === kind && name === key ? (value as Resources[K]) : read.get(k, name),
    siteServing: (host) => read.siteServing(host),
  };
}

/** Creates a validated resource. @throws AlreadyExistsError, MissingReferenceError, InvalidResourceError */
export function planCreate<K extends ResourceKind>(
  kind: K,
  value: Resources[K],
  view: InventoryView,
): Plan<Resources[K]> {
  const key = keyOf(kind, value);
  if (view.get(kind, key)) throw new AlreadyExistsError(kind, key);
  checkRules(kind, value, view);
  return { result: value, writes: [{ type: 'upsert', kind, value, exists: false }] };
}

/** Creates or replaces a resource validated by `validatePut`. @throws as planCreate, plus ConflictError */
export function planPut<K extends ResourceKind>(
  kind: K,
  key: string,
  value: Resources[K],
  view: InventoryView,
): Plan<{ value: Resources[K]; change: Change }> {
  const existing = view.get(kind, key);
  if (!existing) {
    checkRules(kind, value, view);
    return { result: { value, change: 'created' }, writes: [{ type: 'upsert', kind, value, exists: false }] };
  }
  if (canonicalJson(existing) === canonicalJson(value))
    return { result: { value: existing, change: 'unchanged' }, writes: [] };
  checkChange(kind, existing, value, view);
  checkRules(kind, value, view);
  // A changed server must still offer what every resource naming it needs.
  if (kind === 'server') {
    const read = overlay(view, kind, key, value);
    for (const use of view.usesOf(kind, key)) {
      const user = view.get(use.kind, use.key);
      if (!user) continue;
      const problems = checkResource(use.kind, user, read);
      if (problems.invalid.length > 0) {
        throw new ConflictError(
          `server "${key}" is used by ${use.kind} "${use.key}" (${use.role}) and the change breaks it: ` +
            problems.invalid.map((p) => `${p.field} ${p.rule}`).join('; '),
        );
      }
    }
  }
  return { result: { value, change: 'updated' }, writes: [{ type: 'upsert', kind, value, exists: true }] };
}

/** Changes that the inventory cannot make on its own because servers would no longer match it. */
function checkChange<K extends ResourceKind>(
  kind: K,
  before: Resources[K],
  after: Resources[K],
  view: InventoryView,
): void {
  if (kind === 'platform') {
    const [b, a] = [before as Resources['platform'], after as Resources['platform']];
    if (canonicalJson(b.target) !== canonicalJson(a.target)) {
      const sites = view.usesOf('platform', b.name);
      if (sites.length > 0) {
        throw new ConflictError(
          `platform "${b.name}" still has ${sites.length} site(s) (${sites.map((s) => s.key).join(', ')}); ` +
            'its target cannot change until they are migrated to another platform',
        );
      }
    }
  }
  if (kind === 'site') {
    const [b, a] = [before as Resources['site'], after as Resources['site']];
    if (b.platform !== a.platform) {
      throw new ConflictError(
        `site "${b.domain}" is on platform "${b.platform}"; move it with the migrate operation ` +
          `(POST /v1/sites/${b.domain}/migrate) instead of editing the platform field`,
      );
    }
  }
}

/** Removes a resource nothing uses. @throws NotFoundError, InUseError */
export function planRemove(kind: ResourceKind, key: string, view: InventoryView): Plan<void> {
  if (!view.get(kind, key)) throw new NotFoundError(kind, key);
  const uses = view.usesOf(kind, key);
  if (uses.length > 0) throw new InUseError(kind, key, uses);
  return { result: undefined, writes: [{ type: 'delete', kind, key }] };
}

/** The inventory change a completed operation makes. @throws what the underlying create/put/remove throws */
export function planEffect(effect: OperationEffect, view: InventoryView): Plan<void> {
  switch (effect.type) {
    case 'forget':
      if (!view.get(effect.kind, effect.key)) return { result: undefined, writes: [] };
      return planRemove(effect.kind, effect.key, view);
    case 'patch-site': {
      const site = view.get('site', effect.domain);
      if (!site) throw new NotFoundError('site', effect.domain);
      // A migration changes the platform on purpose: write it past the "use migrate" guard, rules still apply.
      const value = validate('site', { ...site, ...effect.patch });
      checkRules('site', value, view);
      return { result: undefined, writes: [{ type: 'upsert', kind: 'site', value, exists: true }] };
    }
    case 'add-cluster-member':
    case 'remove-cluster-member': {
      const cluster = view.get('cluster', effect.cluster);
      if (!cluster) throw new NotFoundError('cluster', effect.cluster);
      const members =
        effect.type === 'add-cluster-member'
          ? [...cluster.members.filter((m) => m !== effect.server), effect.server]
          : cluster.members.filter((m) => m !== effect.server);
      const value = validatePut('cluster', cluster.name, { ...cluster, members });
      const { writes } = planPut('cluster', cluster.name, value, view);
      return { result: undefined, writes };
    }
    case 'set-cluster-lb': {
      const cluster = view.get('cluster', effect.cluster);
      if (!cluster) throw new NotFoundError('cluster', effect.cluster);
      const { loadBalancer: _old, ...rest } = cluster;
      const value = validatePut('cluster', cluster.name, {
        ...rest,
        ...(effect.server !== null ? { loadBalancer: effect.server } : {}),
      });
      const { writes } = planPut('cluster', cluster.name, value, view);
      return { result: undefined, writes };
    }
  }
}

// ---- operations ----

/** An operations row with its timestamps as ISO strings and its effect parsed. */
export interface OperationRow {
  id: string;
  run_id: string;
  type: string;
  resource: string;
  status: string;
  started_at: string;
  closed_at: string | null;
  effect: OperationEffect | null;
  effect_error: string | null;
}

export function toOperationRecord(row: OperationRow): OperationRecord {
  return {
    id: row.id,
    runId: row.run_id,
    type: row.type,
    resource: row.resource,
    status: row.status as OperationStatus,
    startedAt: row.started_at,
    ...(row.closed_at ? { closedAt: row.closed_at } : {}),
    ...(row.effect ? { effect: row.effect } : {}),
    ...(row.effect_error ? { effectError: row.effect_error } : {}),
  };
}

/** Whether recording `next` closes an operation now `current`: only the first close of a running one does. */
export function closesOperation(current: OperationStatus, next: OperationStatus): boolean {
  return current === 'RUNNING' && next !== 'RUNNING';
}

// ---- plans over an asynchronous backend ----

/** Batch reads of an asynchronous backend, inside its transaction. */
export interface ViewLoader {
  /** The stored resources among `keys` (absent keys are left out). */
  get<K extends ResourceKind>(kind: K, keys: string[]): Promise<Map<string, Resources[K]>>;
  /** host → domain of the site serving it, for those of `hosts` some site serves. */
  siteServing(hosts: string[]): Promise<Map<string, string>>;
  usesOf(kind: ResourceKind, key: string): Promise<Use[]>;
}

/** A view over what has been loaded so far that notes every read it could not answer. */
class LoadingView implements InventoryView {
  private readonly docs = new Map<string, unknown>();
  private readonly hosts = new Map<string, string | null>();
  private readonly uses = new Map<string, Use[]>();
  private missedDocs = new Map<ResourceKind, Set<string>>();
  private missedHosts = new Set<string>();
  private missedUses = new Map<string, { kind: ResourceKind; key: string }>();

  get<K extends ResourceKind>(kind: K, key: string): Resources[K] | undefined {
    const id = `${kind}\0${key}`;
    if (this.docs.has(id)) return (this.docs.get(id) ?? undefined) as Resources[K] | undefined;
    let keys = this.missedDocs.get(kind);
    if (!keys) this.missedDocs.set(kind, (keys = new Set()));
    keys.add(key);
    return undefined;
  }

  siteServing(host: string): string | undefined {
    if (this.hosts.has(host)) return this.hosts.get(host) ?? undefined;
    this.missedHosts.add(host);
    return undefined;
  }

  usesOf(kind: ResourceKind, key: string): Use[] {
    const id = `${kind}\0${key}`;
    const known = this.uses.get(id);
    if (known) return known;
    this.missedUses.set(id, { kind, key });
    return [];
  }

  get complete(): boolean {
    return this.missedDocs.size === 0 && this.missedHosts.size === 0 && this.missedUses.size === 0;
  }

  /** Loads everything the last pass missed, then forgets the misses. */
  async load(loader: ViewLoader): Promise<void> {
    const [docs, hosts, uses] = [this.missedDocs, this.missedHosts, this.missedUses];
    this.missedDocs = new Map();
    this.missedHosts = new Set();
    this.missedUses = new Map();
    await Promise.all([
      ...[...docs].map(async ([kind, keys]) => {
        const found = await loader.get(kind, [...keys]);
        for (const key of keys) this.docs.set(`${kind}\0${key}`, found.get(key) ?? null);
      }),
      (async () => {
        if (hosts.size === 0) return;
        const found = await loader.siteServing([...hosts]);
        for (const host of hosts) this.hosts.set(host, found.get(host) ?? null);
      })(),
      ...[...uses].map(async ([id, { kind, key }]) => {
        this.uses.set(id, await loader.usesOf(kind, key));
      }),
    ]);
  }
}

/** Enough for any plan: each pass loads at least one more record, and plans read a handful. */
const MAX_PASSES = 25;

/**
 * Runs a synchronous plan over an asynchronous backend: the plan runs against what is loaded, every read it could
 * not answer is loaded, and it runs again until a pass reads only loaded data; that pass's result (or error) is
 * the plan's. Call inside the transaction the writes will happen in, so that every pass sees the same inventory.
 */
export async function planAsync<T>(plan: (view: InventoryView) => T, loader: ViewLoader): Promise<T> {
  const view = new LoadingView();
  for (let pass = 0; pass < MAX_PASSES; pass++) {
    let outcome: { ok: true; value: T } | { ok: false; error: unknown };
    try {
      outcome = { ok: true, value: plan(view) };
    } catch (error) {
      outcome = { ok: false, error };
    }
    if (view.complete) {
      if (!outcome.ok) throw outcome.error;
      return outcome.value;
    }
    await view.load(loader);
  }
  throw new Error(`inventory plan still reading new records after ${MAX_PASSES} passes`);
}
