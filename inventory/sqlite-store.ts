/**
 * The embedded inventory: one SQLite file (better-sqlite3). Each resource is stored as its validated JSON document
 * plus the key columns other resources refer to, so that foreign keys back up the rule checks and lookups are indexed.
 * WAL mode and a busy timeout let the API and the workers open the same file.
 */
import Database from 'better-sqlite3';
import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import type { Target } from '../domain/model';
import { fieldErrors } from '../domain/fields';
import { migrate } from './migrations';
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
  type InventoryDump,
  type InventoryStore,
  type OperationEffect,
  type OperationRecord,
  type OperationStatus,
  type ResourceKind,
  type Resources,
  type Use,
} from './store';

const TABLE: Record<ResourceKind, { table: string; key: string }> = {
  server: { table: 'servers', key: 'name' },
  pack: { table: 'packs', key: 'name' },
  cluster: { table: 'clusters', key: 'name' },
  platform: { table: 'platforms', key: 'name' },
  site: { table: 'sites', key: 'domain' },
};

interface OperationRow {
  id: string;
  run_id: string;
  type: string;
  resource: string;
  status: string;
  started_at: string;
  closed_at: string | null;
  effect: string | null;
  effect_error: string | null;
}

function toRecord(row: OperationRow): OperationRecord {
  return {
    id: row.id,
    runId: row.run_id,
    type: row.type,
    resource: row.resource,
    status: row.status as OperationStatus,
    startedAt: row.started_at,
    ...(row.closed_at ? { closedAt: row.closed_at } : {}),
    ...(row.effect ? { effect: JSON.parse(row.effect) as OperationEffect } : {}),
    ...(row.effect_error ? { effectError: row.effect_error } : {}),
  };
}

export class SqliteInventoryStore implements InventoryStore {
  readonly schemaVersion: number;

  /** Opens (creating if needed) the inventory at `file` and brings its schema up to date. `:memory:` works too. */
  constructor(
    readonly file: string,
    private readonly db: Database.Database = SqliteInventoryStore.open(file),
  ) {
    this.schemaVersion = migrate(this.db);
  }

  private static open(file: string): Database.Database {
    if (file !== ':memory:') mkdirSync(dirname(file), { recursive: true });
    const db = new Database(file);
    db.pragma('journal_mode = WAL');
    db.pragma('foreign_keys = ON');
    db.pragma('busy_timeout = 5000');
    db.pragma('synchronous = NORMAL');
    return db;
  }

  /**
   * Runs `fn` in a write transaction that takes the write lock at once (BEGIN IMMEDIATE), so that a read-then-write
   * cannot fail half-way when another process (a worker) writes the same file. Nested calls become savepoints.
   */
  private write<T>(fn: () => T): T {
    return this.db.inTransaction ? this.db.transaction(fn)() : this.db.transaction(fn).immediate();
  }

  // ---- reads ----

  private getSync<K extends ResourceKind>(kind: K, key: string): Resources[K] | undefined {
    const { table, key: col } = TABLE[kind];
    const row = this.db.prepare(`SELECT doc FROM ${table} WHERE ${col} = ?`).get(key) as { doc: string } | undefined;
    return row ? this.parseStored(kind, key, row.doc) : undefined;
  }

  private parseStored<K extends ResourceKind>(kind: K, key: string, doc: string): Resources[K] {
    const parsed = RESOURCE_KINDS[kind].schema.safeParse(JSON.parse(doc));
    if (!parsed.success) {
      throw new Error(`stored ${kind} "${key}" no longer passes validation; a schema migration is missing`);
    }
    return parsed.data;
  }

  private listSync<K extends ResourceKind>(kind: K): Resources[K][] {
    const { table, key } = TABLE[kind];
    const rows = this.db.prepare(`SELECT ${key} AS k, doc FROM ${table} ORDER BY ${key}`).all() as {
      k: string;
      doc: string;
    }[];
    return rows.map((r) => this.parseStored(kind, r.k, r.doc));
  }

  private siteServing(host: string): string | undefined {
    const row = this.db.prepare('SELECT site FROM site_hosts WHERE host = ?').get(host) as { site: string } | undefined;
    return row?.site;
  }

  private reader(overlay?: { kind: ResourceKind; key: string; value: unknown }): InventoryReader {
    return {
      get: <K extends ResourceKind>(kind: K, key: string): Resources[K] | undefined =>
        overlay && overlay.kind === kind && overlay.key === key
          ? (overlay.value as Resources[K])
          : this.getSync(kind, key),
      siteServing: (host) => this.siteServing(host),
    };
  }

  private usesSync(kind: ResourceKind, key: string): Use[] {
    const q = (sql: string, k: ResourceKind, role: Use['role']): Use[] =>
      (this.db.prepare(sql).all(key) as { k: string }[]).map((r) => ({ kind: k, key: r.k, role }));
    switch (kind) {
      case 'server':
        return [
          ...q('SELECT name AS k FROM packs WHERE master = ?', 'pack', 'master'),
          ...q('SELECT pack AS k FROM pack_slaves WHERE server = ?', 'pack', 'slave'),
          ...q('SELECT name AS k FROM packs WHERE share_server = ?', 'pack', 'share'),
          ...q('SELECT cluster AS k FROM cluster_members WHERE server = ?', 'cluster', 'member'),
          ...q('SELECT name AS k FROM clusters WHERE load_balancer = ?', 'cluster', 'loadBalancer'),
          ...q('SELECT name AS k FROM platforms WHERE target_server = ?', 'platform', 'target'),
          ...q('SELECT domain AS k FROM sites WHERE db_server = ?', 'site', 'dbServer'),
        ];
      case 'pack':
        return q('SELECT name AS k FROM platforms WHERE target_pack = ?', 'platform', 'target');
      case 'cluster':
        return q('SELECT name AS k FROM platforms WHERE target_cluster = ?', 'platform', 'target');
      case 'platform':
        return q('SELECT domain AS k FROM sites WHERE platform = ?', 'site', 'platform');
      case 'site':
        return [];
    }
  }

  // ---- writes ----

  private validate<K extends ResourceKind>(kind: K, value: unknown): Resources[K] {
    const parsed = RESOURCE_KINDS[kind].schema.safeParse(value);
    if (!parsed.success) throw new InvalidResourceError(fieldErrors(parsed.error));
    return parsed.data;
  }

  private checkRules<K extends ResourceKind>(kind: K, value: Resources[K], read: InventoryReader): void {
    const problems = checkResource(kind, value, read);
    if (problems.missing.length > 0) throw new MissingReferenceError(problems.missing);
    if (problems.invalid.length > 0) throw new InvalidResourceError(problems.invalid);
  }

  /** Writes the document and its key columns. */
  private writeRow<K extends ResourceKind>(kind: K, value: Resources[K], exists: boolean): void {
    const now = new Date().toISOString();
    const doc = JSON.stringify(value);
    const run = (sql: string, ...args: unknown[]) => this.db.prepare(sql).run(...args);
    const upsert = (table: string, key: string, cols: Record<string, unknown>) => {
      const names = Object.keys(cols);
      if (exists) {
        run(
          `UPDATE ${table} SET ${names.map((n) => `${n} = ?`).join(', ')}, doc = ?, updated_at = ? WHERE ${key} = ?`,
          ...names.map((n) => cols[n]),
          doc,
          now,
          keyOf(kind, value),
        );
      } else {
        run(
          `INSERT INTO ${table} (${key}, ${names.join(', ')}${names.length ? ', ' : ''}doc, created_at, updated_at)
           VALUES (${['?', ...names.map(() => '?'), '?', '?', '?'].join(', ')})`,
          keyOf(kind, value),
          ...names.map((n) => cols[n]),
          doc,
          now,
          now,
        );
      }
    };
    switch (kind) {
      case 'server': {
        const s = value as Resources['server'];
        upsert('servers', 'name', { host: s.host });
        break;
      }
      case 'pack': {
        const p = value as Resources['pack'];
        upsert('packs', 'name', { master: p.master, share_server: p.share.server });
        run('DELETE FROM pack_slaves WHERE pack = ?', p.name);
        for (const slave of p.slaves) run('INSERT INTO pack_slaves (pack, server) VALUES (?, ?)', p.name, slave);
        break;
      }
      case 'cluster': {
        const c = value as Resources['cluster'];
        upsert('clusters', 'name', { load_balancer: c.loadBalancer ?? null });
        run('DELETE FROM cluster_members WHERE cluster = ?', c.name);
        for (const m of c.members) run('INSERT INTO cluster_members (cluster, server) VALUES (?, ?)', c.name, m);
        break;
      }
      case 'platform': {
        const { target } = value as Resources['platform'];
        upsert('platforms', 'name', {
          target_kind: target.kind,
          target_name: target.name,
          target_server: target.kind === 'server' ? target.name : null,
          target_pack: target.kind === 'pack' ? target.name : null,
          target_cluster: target.kind === 'cluster' ? target.name : null,
        });
        break;
      }
      case 'site': {
        const s = value as Resources['site'];
        upsert('sites', 'domain', { platform: s.platform, db_server: s.dbServer ?? null, status: s.status });
        run('DELETE FROM site_hosts WHERE site = ?', s.domain);
        for (const host of [s.domain, ...s.aliases]) {
          run('INSERT INTO site_hosts (host, site) VALUES (?, ?)', host, s.domain);
        }
        break;
      }
    }
  }

  private createSync<K extends ResourceKind>(kind: K, input: unknown): Resources[K] {
    const value = this.validate(kind, input);
    return this.write(() => {
      const key = keyOf(kind, value);
      if (this.getSync(kind, key)) throw new AlreadyExistsError(kind, key);
      this.checkRules(kind, value, this.reader());
      this.writeRow(kind, value, false);
      return value;
    });
  }

  private putSync<K extends ResourceKind>(
    kind: K,
    key: string,
    input: unknown,
  ): { value: Resources[K]; change: Change } {
    const value = this.validate(kind, input);
    const keyField = RESOURCE_KINDS[kind].key;
    if (keyOf(kind, value) !== key) {
      throw new InvalidResourceError([{ field: keyField, rule: `must be "${key}", the ${keyField} in the URL` }]);
    }
    return this.write(() => {
      const existing = this.getSync(kind, key);
      if (!existing) {
        this.checkRules(kind, value, this.reader());
        this.writeRow(kind, value, false);
        return { value, change: 'created' as const };
      }
      if (canonicalJson(existing) === canonicalJson(value)) return { value: existing, change: 'unchanged' as const };
      this.checkChange(kind, existing, value);
      this.checkRules(kind, value, this.reader());
      // A changed server must still offer what every resource naming it needs.
      if (kind === 'server') {
        const read = this.reader({ kind, key, value });
        for (const use of this.usesSync(kind, key)) {
          const user = this.getSync(use.kind, use.key);
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
      this.writeRow(kind, value, true);
      return { value, change: 'updated' as const };
    });
  }

  /** Changes that the inventory cannot make on its own because servers would no longer match it. */
  private checkChange<K extends ResourceKind>(kind: K, before: Resources[K], after: Resources[K]): void {
    if (kind === 'platform') {
      const [b, a] = [before as Resources['platform'], after as Resources['platform']];
      if (canonicalJson(b.target) !== canonicalJson(a.target)) {
        const sites = this.usesSync('platform', b.name);
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

  private removeSync(kind: ResourceKind, key: string): void {
    this.write(() => {
      if (!this.getSync(kind, key)) throw new NotFoundError(kind, key);
      const uses = this.usesSync(kind, key);
      if (uses.length > 0) throw new InUseError(kind, key, uses);
      const { table, key: col } = TABLE[kind];
      this.db.prepare(`DELETE FROM ${table} WHERE ${col} = ?`).run(key);
    });
  }

  private applyEffect(effect: OperationEffect): void {
    switch (effect.type) {
      case 'forget':
        if (this.getSync(effect.kind, effect.key)) this.removeSync(effect.kind, effect.key);
        return;
      case 'patch-site': {
        const site = this.getSync('site', effect.domain);
        if (!site) throw new NotFoundError('site', effect.domain);
        const next = { ...site, ...effect.patch };
        // A migration changes the platform on purpose: write it past the "use migrate" guard, rules still apply.
        const value = this.validate('site', next);
        this.checkRules('site', value, this.reader());
        this.writeRow('site', value, true);
        return;
      }
      case 'add-cluster-member':
      case 'remove-cluster-member': {
        const cluster = this.getSync('cluster', effect.cluster);
        if (!cluster) throw new NotFoundError('cluster', effect.cluster);
        const members =
          effect.type === 'add-cluster-member'
            ? [...cluster.members.filter((m) => m !== effect.server), effect.server]
            : cluster.members.filter((m) => m !== effect.server);
        this.putSync('cluster', cluster.name, { ...cluster, members });
        return;
      }
    }
  }

  // ---- InventoryStore ----

  async list<K extends ResourceKind>(kind: K): Promise<Resources[K][]> {
    return this.listSync(kind);
  }
  async get<K extends ResourceKind>(kind: K, key: string): Promise<Resources[K] | undefined> {
    return this.getSync(kind, key);
  }
  async create<K extends ResourceKind>(kind: K, value: unknown): Promise<Resources[K]> {
    return this.createSync(kind, value);
  }
  async put<K extends ResourceKind>(
    kind: K,
    key: string,
    value: unknown,
  ): Promise<{ value: Resources[K]; change: Change }> {
    return this.putSync(kind, key, value);
  }
  async remove(kind: ResourceKind, key: string): Promise<void> {
    this.removeSync(kind, key);
  }
  async usesOf(kind: ResourceKind, key: string): Promise<Use[]> {
    return this.usesSync(kind, key);
  }
  async platformsOn(target: Target): Promise<Resources['platform'][]> {
    const rows = this.db
      .prepare('SELECT name, doc FROM platforms WHERE target_kind = ? AND target_name = ? ORDER BY name')
      .all(target.kind, target.name) as { name: string; doc: string }[];
    return rows.map((r) => this.parseStored('platform', r.name, r.doc));
  }
  async sitesOn(platform: string): Promise<Resources['site'][]> {
    const rows = this.db.prepare('SELECT domain, doc FROM sites WHERE platform = ? ORDER BY domain').all(platform) as {
      domain: string;
      doc: string;
    }[];
    return rows.map((r) => this.parseStored('site', r.domain, r.doc));
  }

  async recordOperation(op: OperationRecord): Promise<void> {
    this.db
      .prepare(
        `INSERT INTO operations (id, run_id, type, resource, status, started_at, closed_at, effect, effect_error)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`,
      )
      .run(
        op.id,
        op.runId,
        op.type,
        op.resource,
        op.status,
        op.startedAt,
        op.closedAt ?? null,
        op.effect ? JSON.stringify(op.effect) : null,
        op.effectError ?? null,
      );
  }

  async getOperation(id: string, runId?: string): Promise<OperationRecord | undefined> {
    const row = (
      runId
        ? this.db.prepare('SELECT * FROM operations WHERE id = ? AND run_id = ?').get(id, runId)
        : this.db.prepare('SELECT * FROM operations WHERE id = ? ORDER BY started_at DESC, rowid DESC LIMIT 1').get(id)
    ) as OperationRow | undefined;
    return row ? toRecord(row) : undefined;
  }

  async listOperations(
    filter: { resource?: string; status?: OperationStatus; limit?: number } = {},
  ): Promise<OperationRecord[]> {
    const where: string[] = [];
    const args: unknown[] = [];
    if (filter.resource) {
      where.push('resource = ?');
      args.push(filter.resource);
    }
    if (filter.status) {
      where.push('status = ?');
      args.push(filter.status);
    }
    const sql = `SELECT * FROM operations ${where.length ? `WHERE ${where.join(' AND ')}` : ''}
                 ORDER BY started_at DESC, rowid DESC LIMIT ?`;
    return (this.db.prepare(sql).all(...args, filter.limit ?? 100) as OperationRow[]).map(toRecord);
  }

  async closeOperation(
    id: string,
    runId: string,
    status: OperationStatus,
    closedAt: Date,
  ): Promise<OperationRecord | undefined> {
    return this.write(() => {
      const row = this.db.prepare('SELECT * FROM operations WHERE id = ? AND run_id = ?').get(id, runId) as
        | OperationRow
        | undefined;
      if (!row) return undefined;
      if (row.status !== 'RUNNING' || status === 'RUNNING') return toRecord(row);
      let effectError: string | null = null;
      if (status === 'COMPLETED' && row.effect) {
        const effect = JSON.parse(row.effect) as OperationEffect;
        try {
          this.db.transaction(() => this.applyEffect(effect))();
        } catch (err) {
          effectError = err instanceof Error ? err.message : String(err);
        }
      }
      this.db
        .prepare('UPDATE operations SET status = ?, closed_at = ?, effect_error = ? WHERE id = ? AND run_id = ?')
        .run(status, closedAt.toISOString(), effectError, id, runId);
      return toRecord(
        this.db.prepare('SELECT * FROM operations WHERE id = ? AND run_id = ?').get(id, runId) as OperationRow,
      );
    });
  }

  async dump(): Promise<InventoryDump> {
    return this.db.transaction(() => ({
      schemaVersion: this.schemaVersion,
      servers: this.listSync('server'),
      packs: this.listSync('pack'),
      clusters: this.listSync('cluster'),
      platforms: this.listSync('platform'),
      sites: this.listSync('site'),
      operations: (this.db.prepare('SELECT * FROM operations ORDER BY started_at, rowid').all() as OperationRow[]).map(
        toRecord,
      ),
    }))();
  }

  async ping(): Promise<void> {
    this.db.prepare('SELECT 1').get();
  }

  async close(): Promise<void> {
    if (this.db.open) this.db.close();
  }
}

/** Opens the inventory named by the settings (`settings.inventoryFile`). */
export function openInventoryStore(settings: { inventoryFile: string }): SqliteInventoryStore {
  return new SqliteInventoryStore(settings.inventoryFile);
}
