/**
 * The inventory: what the operator declared (servers, packs, clusters, platforms, sites) and the operations
 * started on them. `InventoryStore` is the contract every backend honours (SQLite, and PostgreSQL when SITEFLEET_INVENTORY_URL is set):
 * it validates every resource with the domain schemas, enforces references, and refuses deletes that orphan.
 */
import type { z } from 'zod';
import { clusterSchema, packSchema, platformSchema, serverSchema, siteSchema } from '../domain/model';
import type { Cluster, Pack, Platform, Server, Site, Target } from '../domain/model';

export interface Resources {
  server: Server;
  pack: Pack;
  cluster: Cluster;
  platform: Platform;
  site: Site;
}
export type ResourceKind = keyof Resources;

/** The schema that validates each kind, and the field that names a resource of that kind. */
export const RESOURCE_KINDS: { [K in ResourceKind]: { schema: z.ZodType<Resources[K]>; key: string; plural: string } } =
  {
    server: { schema: serverSchema, key: 'name', plural: 'servers' },
    pack: { schema: packSchema, key: 'name', plural: 'packs' },
    cluster: { schema: clusterSchema, key: 'name', plural: 'clusters' },
    platform: { schema: platformSchema, key: 'name', plural: 'platforms' },
    site: { schema: siteSchema, key: 'domain', plural: 'sites' },
  };

export function keyOf<K extends ResourceKind>(kind: K, value: Resources[K]): string {
  return kind === 'site' ? (value as Site).domain : (value as Exclude<Resources[ResourceKind], Site>).name;
}

/** Where one resource names another. */
export type UseRole = 'master' | 'slave' | 'share' | 'member' | 'loadBalancer' | 'target' | 'platform' | 'dbServer';
export interface Use {
  kind: ResourceKind;
  key: string;
  role: UseRole;
}

export type Change = 'created' | 'updated' | 'unchanged';

/** An inventory change to make when an operation completes successfully (for example: forget a deleted site). */
export type OperationEffect =
  | { type: 'forget'; kind: 'site' | 'platform'; key: string }
  | { type: 'patch-site'; domain: string; patch: Partial<Pick<Site, 'platform' | 'status'>> }
  | { type: 'add-cluster-member'; cluster: string; server: string }
  | { type: 'remove-cluster-member'; cluster: string; server: string }
  | { type: 'set-cluster-lb'; cluster: string; server: string | null };

/** Temporal's execution status names, plus RUNNING for a started operation not yet seen closed. */
export type OperationStatus =
  | 'RUNNING'
  | 'COMPLETED'
  | 'FAILED'
  | 'CANCELLED'
  | 'TERMINATED'
  | 'CONTINUED_AS_NEW'
  | 'TIMED_OUT'
  | 'UNKNOWN';

export interface OperationRecord {
  /** The workflow id, such as `site/example.com`. */
  id: string;
  runId: string;
  /** The workflow type, such as `InstallSiteOnCluster`. */
  type: string;
  /** The resource the operation acts on, such as `site/example.com` or `cluster/web`. */
  resource: string;
  status: OperationStatus;
  startedAt: string;
  closedAt?: string;
  effect?: OperationEffect;
  /** Why the effect could not be applied, when it could not. */
  effectError?: string;
}

export interface InventoryDump {
  schemaVersion: number;
  servers: Server[];
  packs: Pack[];
  clusters: Cluster[];
  platforms: Platform[];
  sites: Site[];
  operations: OperationRecord[];
}

/**
 * The inventory store. Every method is atomic: a refused write leaves the inventory unchanged.
 * Writes throw the errors below; reads of a missing resource return undefined.
 */
export interface InventoryStore {
  list<K extends ResourceKind>(kind: K): Promise<Resources[K][]>;
  get<K extends ResourceKind>(kind: K, key: string): Promise<Resources[K] | undefined>;
  /** Validates and creates. @throws InvalidResourceError, MissingReferenceError, AlreadyExistsError */
  create<K extends ResourceKind>(kind: K, value: unknown): Promise<Resources[K]>;
  /** Validates and creates or replaces the resource named `key`. @throws as `create`, plus ConflictError */
  put<K extends ResourceKind>(kind: K, key: string, value: unknown): Promise<{ value: Resources[K]; change: Change }>;
  /** Removes a resource nothing uses. @throws NotFoundError, InUseError */
  remove(kind: ResourceKind, key: string): Promise<void>;
  /** Every resource that names this one. */
  usesOf(kind: ResourceKind, key: string): Promise<Use[]>;
  platformsOn(target: Target): Promise<Platform[]>;
  sitesOn(platform: string): Promise<Site[]>;

  recordOperation(op: OperationRecord): Promise<void>;
  /** The run `runId` of operation `id`, or its latest run. */
  getOperation(id: string, runId?: string): Promise<OperationRecord | undefined>;
  listOperations(filter?: { resource?: string; status?: OperationStatus; limit?: number }): Promise<OperationRecord[]>;
  /**
   * Records that an operation closed. The first caller to see it closed applies its effect (when it COMPLETED),
   * in the same transaction; later callers change nothing. Returns the updated record.
   */
  closeOperation(
    id: string,
    runId: string,
    status: OperationStatus,
    closedAt: Date,
  ): Promise<OperationRecord | undefined>;

  dump(): Promise<InventoryDump>;
  /** Cheap liveness check of the backing database. */
  ping(): Promise<void>;
  close(): Promise<void>;
}

export interface FieldProblem {
  field: string;
  rule: string;
}
export interface MissingReference {
  field: string;
  kind: ResourceKind;
  name: string;
}

export class InventoryError extends Error {}

/** The resource breaks a field rule or a rule between resources (for example a slave without http). */
export class InvalidResourceError extends InventoryError {
  constructor(readonly fields: FieldProblem[]) {
    super(`invalid resource: ${fields.map((f) => `${f.field} ${f.rule}`).join('; ')}`);
  }
}

/** The resource names resources that do not exist. */
export class MissingReferenceError extends InventoryError {
  constructor(readonly references: MissingReference[]) {
    super(references.map((r) => `unknown ${r.kind} "${r.name}" (${r.field})`).join('; '));
  }
}

export class NotFoundError extends InventoryError {
  constructor(
    readonly kind: ResourceKind,
    readonly key: string,
  ) {
    super(`no ${kind} named "${key}"`);
  }
}

export class AlreadyExistsError extends InventoryError {
  constructor(
    readonly kind: ResourceKind,
    readonly key: string,
    detail?: string,
  ) {
    super(detail ?? `a ${kind} named "${key}" already exists`);
  }
}

/** The resource is still named by others; removing it would orphan them. */
export class InUseError extends InventoryError {
  constructor(
    readonly kind: ResourceKind,
    readonly key: string,
    readonly uses: Use[],
  ) {
    super(
      `${kind} "${key}" is still used by ${uses.map((u) => `${u.kind} "${u.key}" (${u.role})`).join(', ')}; ` +
        'change or remove those first',
    );
  }
}

/** The change is valid on its own but conflicts with the current state (for example moving a platform with sites). */
export class ConflictError extends InventoryError {}

/** Stable JSON (object keys sorted) so that two equal resources compare equal whatever their key order. */
export function canonicalJson(value: unknown): string {
  return JSON.stringify(value, (_key, v: unknown) =>
    v !== null && typeof v === 'object' && !Array.isArray(v)
      ? Object.fromEntries(
          Object.entries(v as Record<string, unknown>).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)),
        )
      : v,
  );
}
