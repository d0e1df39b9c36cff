/**
 * The inventory on PostgreSQL (the production stack's `sitefleet` database, SITEFLEET_INVENTORY_URL). Same layout
 * as the SQLite store: each resource is its validated JSONB document plus the key columns other resources refer
 * to, with foreign keys backing up the rule checks. What a write checks and changes is decided by ./store-core, the
 * same code the SQLite store runs, so both refuse the same things with the same errors.
 *
 * Concurrency: every inventory write runs in a transaction that first takes one transaction-scoped advisory lock,
 * the counterpart of SQLite's BEGIN IMMEDIATE: writers (API replicas, CLI, workers) queue one behind the other, so
 * the rule checks of a write read exactly the inventory it commits into (no phantom like two packs both checking
 * that no cluster has their name), while readers never wait. `dump` reads one REPEATABLE READ snapshot.
 *
 * The tables are in ./schema (shared with SQLite), their migrations in ./postgres-migrations.
 */
import { messageOf } from '../common/error-message';
import { Pool, type PoolClient, type PoolConfig, type QueryResultRow } from 'pg';
import type { Target } from '../domain/model';
import {
  closesOperation,
  parseStored,
  planAsync,
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
  type ViewLoader,
  type Write,
} from './store-core';
import { LOCK_CLASS, migratePostgres, WRITE_LOCK } from './postgres-migrations';
import type {
  Change,
  InventoryDump,
  InventoryStore,
  OperationRecord,
  OperationStatus,
  ResourceKind,
  Resources,
  Use,
} from './store';

/** How long a write waits for another writer before failing (SQLite: busy_timeout). */
const LOCK_TIMEOUT = '10s';

// ---- rows ----

type Queryable = Pick<PoolClient, 'query'>;

const OPERATION_COLUMNS = 'id, run_id, type, resource, status, started_at, closed_at, effect, effect_error';

/** An operations row as pg returns it: timestamps as Date, the effect parsed from JSONB. */
type PgOperationRow = Omit<OperationRow, 'started_at' | 'closed_at'> & { started_at: Date; closed_at: Date | null };

function toRecord(row: PgOperationRow): OperationRecord {
  return toOperationRecord({
    ...row,
    started_at: row.started_at.toISOString(),
    closed_at: row.closed_at ? row.closed_at.toISOString() : null,
  });
}

async function rowsOf<R extends QueryResultRow>(db: Queryable, sql: string, args: unknown[] = []): Promise<R[]> {
  return (await db.query<R>(sql, args)).rows;
}

export interface PostgresStoreOptions {
  /** Largest number of connections. @default 10 */
  maxConnections?: number;
  /** Errors of idle pooled connections (the pool drops them and reconnects); ignored by default. */
  onIdleError?: (err: Error) => void;
}

export class PostgresInventoryStore implements InventoryStore {
  private closed = false;

  private constructor(
    private readonly pool: Pool,
    readonly schemaVersion: number,
  ) {}

  /** Connects to the inventory at `url` (postgres://...) and brings its schema up to date. */
  static async open(url: string, options: PostgresStoreOptions = {}): Promise<PostgresInventoryStore> {
    const config: PoolConfig = {
      connectionString: url,
      max: options.maxConnections ?? 10,
      connectionTimeoutMillis: 10_000,
      idleTimeoutMillis: 30_000,
      application_name: 'sitefleet',
    };
    const pool = new Pool(config);
    // Without a listener, an idle connection dropped by the server (restart, failover) would crash the process.
    pool.on('error', (err) => options.onIdleError?.(err));
    try {
      return new PostgresInventoryStore(pool, await migratePostgres(pool));
    } catch (err) {
      await pool.end();
      throw err;
    }
  }

  /**
   * Runs `fn` in a transaction on one connection. `write`: READ COMMITTED after taking the inventory write lock,
   * so that every statement sees all earlier writes and no other writer commits until this one ends.
   * `snapshot`: one consistent read-only view.
   */
  private async transaction<T>(mode: 'write' | 'snapshot', fn: (client: PoolClient) => Promise<T>): Promise<T> {
    const client = await this.pool.connect();
    let broken: Error | undefined;
    try {
      await client.query(
        mode === 'write'
          ? `BEGIN; SET LOCAL lock_timeout = '${LOCK_TIMEOUT}'; SELECT pg_advisory_xact_lock(${LOCK_CLASS}, ${WRITE_LOCK})`
          : 'BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY',
      );
      const result = await fn(client);
      await client.query('COMMIT');
      return result;
    } catch (err) {
      await client.query('ROLLBACK').catch((rollbackError: unknown) => {
        broken = rollbackError instanceof Error ? rollbackError : new Error(String(rollbackError));
      });
      throw err;
    } finally {
      client.release(broken);
    }
  }

  /** Decides with the shared plan, then carries out its writes, on `client` inside its write transaction. */
  private async run<T>(client: PoolClient, plan: (view: InventoryView) => Plan<T>): Promise<T> {
    const { result, writes } = await planAsync(plan, this.loader(client));
    for (const w of writes) await this.writeRow(client, w);
    return result;
  }

  private write<T>(plan: (view: InventoryView) => Plan<T>): Promise<T> {
    return this.transaction('write', (client) => this.run(client, plan));
  }

  // ---- reads ----

  private loader(db: Queryable): ViewLoader {
    return {
      get: async <K extends ResourceKind>(kind: K, keys: string[]) => {
        const { table, key } = TABLES[kind];
        const rows = await rowsOf<{ k: string; doc: unknown }>(
          db,
          `SELECT ${key} AS k, doc FROM ${table} WHERE ${key} = ANY($1::text[])`,
          [keys],
        );
        return new Map(rows.map((r) => [r.k, parseStored(kind, r.k, r.doc)]));
      },
      siteServing: async (hosts) => {
        const rows = await rowsOf<{ host: string; site: string }>(
          db,
          'SELECT host, site FROM site_hosts WHERE host = ANY($1::text[])',
          [hosts],
        );
        return new Map(rows.map((r) => [r.host, r.site]));
      },
      usesOf: (kind, key) => this.uses(db, kind, key),
    };
  }

  private async uses(db: Queryable, kind: ResourceKind, key: string): Promise<Use[]> {
    const sql = usesSql(kind, '$1');
    if (!sql) return [];
    return usesFromRows(kind, await rowsOf<{ ord: number; k: string }>(db, sql, [key]));
  }

  private async listIn<K extends ResourceKind>(db: Queryable, kind: K): Promise<Resources[K][]> {
    const { table, key } = TABLES[kind];
    const rows = await rowsOf<{ k: string; doc: unknown }>(db, `SELECT ${key} AS k, doc FROM ${table} ORDER BY ${key}`);
    return rows.map((r) => parseStored(kind, r.k, r.doc));
  }

  // ---- writes ----

  /** Writes (or deletes) the document, its key columns and its child rows. */
  private async writeRow(db: Queryable, w: Write): Promise<void> {
    if (w.type === 'delete') {
      const { table, key } = TABLES[w.kind];
      await db.query(`DELETE FROM ${table} WHERE ${key} = $1`, [w.key]);
      return;
    }
    const row = rowOf(w.kind, w.value);
    const names = Object.keys(row.columns);
    const args: unknown[] = [row.key, ...names.map((n) => row.columns[n]), JSON.stringify(w.value)];
    const docParam = `$${args.length}::jsonb`;
    if (w.exists) {
      const sets = names.map((n, i) => `${n} = $${i + 2}`);
      await db.query(
        `UPDATE ${row.table} SET ${[...sets, `doc = ${docParam}`, 'updated_at = now()'].join(', ')}
         WHERE ${row.keyColumn} = $1`,
        args,
      );
    } else {
      await db.query(
        `INSERT INTO ${row.table} (${[row.keyColumn, ...names, 'doc', 'created_at', 'updated_at'].join(', ')})
         VALUES (${args.map((_, i) => (i === args.length - 1 ? docParam : `$${i + 1}`)).join(', ')}, now(), now())`,
        args,
      );
    }
    if (row.children) {
      const { table, parentColumn, valueColumn, values } = row.children;
      await db.query(`DELETE FROM ${table} WHERE ${parentColumn} = $1`, [row.key]);
      if (values.length > 0) {
        await db.query(`INSERT INTO ${table} (${parentColumn}, ${valueColumn}) SELECT $1, unnest($2::text[])`, [
          row.key,
          values,
        ]);
      }
    }
  }

  // ---- InventoryStore ----

  async list<K extends ResourceKind>(kind: K): Promise<Resources[K][]> {
    return this.listIn(this.pool, kind);
  }

  async get<K extends ResourceKind>(kind: K, key: string): Promise<Resources[K] | undefined> {
    return (await this.loader(this.pool).get(kind, [key])).get(key);
  }

  async create<K extends ResourceKind>(kind: K, input: unknown): Promise<Resources[K]> {
    const value = validate(kind, input);
    return this.write((view) => planCreate(kind, value, view));
  }

  async put<K extends ResourceKind>(
    kind: K,
    key: string,
    input: unknown,
  ): Promise<{ value: Resources[K]; change: Change }> {
    const value = validatePut(kind, key, input);
    return this.write((view) => planPut(kind, key, value, view));
  }

  async remove(kind: ResourceKind, key: string): Promise<void> {
    await this.write((view) => planRemove(kind, key, view));
  }

  async usesOf(kind: ResourceKind, key: string): Promise<Use[]> {
    return this.uses(this.pool, kind, key);
  }

  async platformsOn(target: Target): Promise<Resources['platform'][]> {
    const rows = await rowsOf<{ name: string; doc: unknown }>(
      this.pool,
      'SELECT name, doc FROM platforms WHERE target_kind = $1 AND target_name = $2 ORDER BY name',
      [target.kind, target.name],
    );
    return rows.map((r) => parseStored('platform', r.name, r.doc));
  }

  async sitesOn(platform: string): Promise<Resources['site'][]> {
    const rows = await rowsOf<{ domain: string; doc: unknown }>(
      this.pool,
      'SELECT domain, doc FROM sites WHERE platform = $1 ORDER BY domain',
      [platform],
    );
    return rows.map((r) => parseStored('site', r.domain, r.doc));
  }

  async recordOperation(op: OperationRecord): Promise<void> {
    await this.pool.query(
      `INSERT INTO operations (${OPERATION_COLUMNS})
       VALUES ($1, $2, $3, $4, $5, $6::timestamptz, $7::timestamptz, $8::jsonb, $9)`,
      [
        op.id,
        op.runId,
        op.type,
        op.resource,
        op.status,
        op.startedAt,
        op.closedAt ?? null,
        op.effect ? JSON.stringify(op.effect) : null,
        op.effectError ?? null,
      ],
    );
  }

  async getOperation(id: string, runId?: string): Promise<OperationRecord | undefined> {
    const [row] = runId
      ? await rowsOf<PgOperationRow>(
          this.pool,
          `SELECT ${OPERATION_COLUMNS} FROM operations WHERE id = $1 AND run_id = $2`,
          [id, runId],
        )
      : await rowsOf<PgOperationRow>(
          this.pool,
          `SELECT ${OPERATION_COLUMNS} FROM operations WHERE id = $1 ORDER BY started_at DESC, seq DESC LIMIT 1`,
          [id],
        );
    return row ? toRecord(row) : undefined;
  }

  async listOperations(
    filter: { resource?: string; status?: OperationStatus; limit?: number } = {},
  ): Promise<OperationRecord[]> {
    const where: string[] = [];
    const args: unknown[] = [];
    if (filter.resource) {
      args.push(filter.resource);
      where.push(`resource = $${args.length}`);
    }
    if (filter.status) {
      args.push(filter.status);
      where.push(`status = $${args.length}`);
    }
    args.push(filter.limit ?? 100);
    const sql = `SELECT ${OPERATION_COLUMNS} FROM operations ${where.length ? `WHERE ${where.join(' AND ')}` : ''}
                 ORDER BY started_at DESC, seq DESC LIMIT $${args.length}`;
    return (await rowsOf<PgOperationRow>(this.pool, sql, args)).map(toRecord);
  }

  async closeOperation(
    id: string,
    runId: string,
    status: OperationStatus,
    closedAt: Date,
  ): Promise<OperationRecord | undefined> {
    return this.transaction('write', async (client) => {
      const [row] = await rowsOf<PgOperationRow>(
        client,
        `SELECT ${OPERATION_COLUMNS} FROM operations WHERE id = $1 AND run_id = $2 FOR UPDATE`,
        [id, runId],
      );
      if (!row) return undefined;
      const record = toRecord(row);
      if (!closesOperation(record.status, status)) return record;
      let effectError: string | null = null;
      if (status === 'COMPLETED' && record.effect) {
        const effect = record.effect;
        // An effect that fails half-way leaves nothing behind; the close is recorded all the same.
        await client.query('SAVEPOINT effect');
        try {
          await this.run(client, (view) => planEffect(effect, view));
          await client.query('RELEASE SAVEPOINT effect');
        } catch (err) {
          await client.query('ROLLBACK TO SAVEPOINT effect');
          effectError = messageOf(err);
        }
      }
      const [updated] = await rowsOf<PgOperationRow>(
        client,
        `UPDATE operations SET status = $1, closed_at = $2, effect_error = $3 WHERE id = $4 AND run_id = $5
         RETURNING ${OPERATION_COLUMNS}`,
        [status, closedAt, effectError, id, runId],
      );
      return updated ? toRecord(updated) : undefined;
    });
  }

  async dump(): Promise<InventoryDump> {
    return this.transaction('snapshot', async (client) => ({
      schemaVersion: this.schemaVersion,
      servers: await this.listIn(client, 'server'),
      packs: await this.listIn(client, 'pack'),
      clusters: await this.listIn(client, 'cluster'),
      platforms: await this.listIn(client, 'platform'),
      sites: await this.listIn(client, 'site'),
      operations: (
        await rowsOf<PgOperationRow>(client, `SELECT ${OPERATION_COLUMNS} FROM operations ORDER BY started_at, seq`)
      ).map(toRecord),
    }));
  }

  async ping(): Promise<void> {
    await this.pool.query('SELECT 1');
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.pool.end();
  }
}
