/**
 * The embedded inventory: one SQLite file (better-sqlite3). Each resource is stored as its validated JSON document
 * plus the key columns other resources refer to, so that foreign keys back up the rule checks and lookups are indexed.
 * WAL mode and a busy timeout let the API and the workers open the same file.
 * What a write checks and changes is decided in ./store-core, shared with the PostgreSQL store.
 */
import { messageOf } from '../common/error-message';
import Database from 'better-sqlite3';
import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import type { Target } from '../domain/model';
import { migrate } from './migrations';
import {
  closesOperation,
  parseStored,
  planCreate,
  planEffect,
  planPut,
  planRemove,
  rowOf,
  TABLES,
  toOperationRecord,
  usesFromRows,
  usesSql,
  validate,
  validatePut,
  type InventoryView,
  type OperationRow,
  type Plan,
  type Write,
} from './store-core';
import type {
  Change,
  InventoryDump,
  InventoryStore,
  OperationEffect,
  OperationRecord,
  OperationStatus,
  ResourceKind,
  Resources,
  Use,
} from './store';

/** An operations row as SQLite returns it: the effect is JSON text. */
type SqliteOperationRow = Omit<OperationRow, 'effect'> & { effect: string | null };

function toRecord(row: SqliteOperationRow): OperationRecord {
  return toOperationRecord({ ...row, effect: row.effect ? (JSON.parse(row.effect) as OperationEffect) : null });
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

  /** Decides with the shared plan, then carries out its writes, all in one write transaction. */
  private run<T>(plan: (view: InventoryView) => Plan<T>): T {
    return this.write(() => {
      const { result, writes } = plan(this.view);
      for (const w of writes) this.writeRow(w);
      return result;
    });
  }

  // ---- reads ----

  private getSync<K extends ResourceKind>(kind: K, key: string): Resources[K] | undefined {
    const { table, key: col } = TABLES[kind];
    const row = this.db.prepare(`SELECT doc FROM ${table} WHERE ${col} = ?`).get(key) as { doc: string } | undefined;
    return row ? parseStored(kind, key, JSON.parse(row.doc)) : undefined;
  }

  private listSync<K extends ResourceKind>(kind: K): Resources[K][] {
    const { table, key } = TABLES[kind];
    const rows = this.db.prepare(`SELECT ${key} AS k, doc FROM ${table} ORDER BY ${key}`).all() as {
      k: string;
      doc: string;
    }[];
    return rows.map((r) => parseStored(kind, r.k, JSON.parse(r.doc)));
  }

  private siteServing(host: string): string | undefined {
    const row = this.db.prepare('SELECT site FROM site_hosts WHERE host = ?').get(host) as { site: string } | undefined;
    return row?.site;
  }

  private usesSync(kind: ResourceKind, key: string): Use[] {
    const sql = usesSql(kind, '@key');
    if (!sql) return [];
    return usesFromRows(kind, this.db.prepare(sql).all({ key }) as { ord: number; k: string }[]);
  }

  private readonly view: InventoryView = {
    get: (kind, key) => this.getSync(kind, key),
    siteServing: (host) => this.siteServing(host),
    usesOf: (kind, key) => this.usesSync(kind, key),
  };

  // ---- writes ----

  /** Writes (or deletes) the document, its key columns and its child rows. */
  private writeRow(w: Write): void {
    const run = (sql: string, ...args: unknown[]) => this.db.prepare(sql).run(...args);
    if (w.type === 'delete') {
      const { table, key } = TABLES[w.kind];
      run(`DELETE FROM ${table} WHERE ${key} = ?`, w.key);
      return;
    }
    const now = new Date().toISOString();
    const doc = JSON.stringify(w.value);
    const row = rowOf(w.kind, w.value);
    const names = Object.keys(row.columns);
    const values = names.map((n) => row.columns[n]);
    if (w.exists) {
      run(
        `UPDATE ${row.table} SET ${names.map((n) => `${n} = ?, `).join('')}doc = ?, updated_at = ? WHERE ${row.keyColumn} = ?`,
        ...values,
        doc,
        now,
        row.key,
      );
    } else {
      run(
        `INSERT INTO ${row.table} (${[row.keyColumn, ...names, 'doc', 'created_at', 'updated_at'].join(', ')})
         VALUES (${[row.key, ...values, doc, now, now].map(() => '?').join(', ')})`,
        row.key,
        ...values,
        doc,
        now,
        now,
      );
    }
    if (row.children) {
      const { table, parentColumn, valueColumn, values: children } = row.children;
      run(`DELETE FROM ${table} WHERE ${parentColumn} = ?`, row.key);
      const insert = this.db.prepare(`INSERT INTO ${table} (${parentColumn}, ${valueColumn}) VALUES (?, ?)`);
      for (const child of children) insert.run(row.key, child);
    }
  }

  // ---- InventoryStore ----

  async list<K extends ResourceKind>(kind: K): Promise<Resources[K][]> {
    return this.listSync(kind);
  }
  async get<K extends ResourceKind>(kind: K, key: string): Promise<Resources[K] | undefined> {
    return this.getSync(kind, key);
  }
  async create<K extends ResourceKind>(kind: K, input: unknown): Promise<Resources[K]> {
    const value = validate(kind, input);
    return this.run((view) => planCreate(kind, value, view));
  }
  async put<K extends ResourceKind>(
    kind: K,
    key: string,
    input: unknown,
  ): Promise<{ value: Resources[K]; change: Change }> {
    const value = validatePut(kind, key, input);
    return this.run((view) => planPut(kind, key, value, view));
  }
  async remove(kind: ResourceKind, key: string): Promise<void> {
    this.run((view) => planRemove(kind, key, view));
  }
  async usesOf(kind: ResourceKind, key: string): Promise<Use[]> {
    return this.usesSync(kind, key);
  }
  async platformsOn(target: Target): Promise<Resources['platform'][]> {
    const rows = this.db
      .prepare('SELECT name, doc FROM platforms WHERE target_kind = ? AND target_name = ? ORDER BY name')
      .all(target.kind, target.name) as { name: string; doc: string }[];
    return rows.map((r) => parseStored('platform', r.name, JSON.parse(r.doc)));
  }
  async sitesOn(platform: string): Promise<Resources['site'][]> {
    const rows = this.db.prepare('SELECT domain, doc FROM sites WHERE platform = ? ORDER BY domain').all(platform) as {
      domain: string;
      doc: string;
    }[];
    return rows.map((r) => parseStored('site', r.domain, JSON.parse(r.doc)));
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
    ) as SqliteOperationRow | undefined;
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
    return (this.db.prepare(sql).all(...args, filter.limit ?? 100) as SqliteOperationRow[]).map(toRecord);
  }

  async closeOperation(
    id: string,
    runId: string,
    status: OperationStatus,
    closedAt: Date,
  ): Promise<OperationRecord | undefined> {
    return this.write(() => {
      const row = this.db.prepare('SELECT * FROM operations WHERE id = ? AND run_id = ?').get(id, runId) as
        | SqliteOperationRow
        | undefined;
      if (!row) return undefined;
      const record = toRecord(row);
      if (!closesOperation(record.status, status)) return record;
      let effectError: string | null = null;
      if (status === 'COMPLETED' && record.effect) {
        const effect = record.effect;
        try {
          // Nested, `run` is a savepoint: an effect that fails half-way leaves nothing behind.
          this.run((view) => planEffect(effect, view));
        } catch (err) {
          effectError = messageOf(err);
        }
      }
      this.db
        .prepare('UPDATE operations SET status = ?, closed_at = ?, effect_error = ? WHERE id = ? AND run_id = ?')
        .run(status, closedAt.toISOString(), effectError, id, runId);
      return toRecord(
        this.db.prepare('SELECT * FROM operations WHERE id = ? AND run_id = ?').get(id, runId) as SqliteOperationRow,
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
      operations: (
        this.db.prepare('SELECT * FROM operations ORDER BY started_at, rowid').all() as SqliteOperationRow[]
      ).map(toRecord),
    }))();
  }

  async ping(): Promise<void> {
    this.db.prepare('SELECT 1').get();
  }

  async close(): Promise<void> {
    if (this.db.open) this.db.close();
  }
}
