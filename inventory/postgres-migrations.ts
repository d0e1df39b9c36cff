/**
 * Migrations of the PostgreSQL inventory (the tables are in ./schema, shared with SQLite), and the advisory locks
 * the store takes. Migrations are versioned in `schema_migrations`, each applied once in its own transaction under
 * a session advisory lock, so processes opening the same database at once do not race.
 */
import type { Pool } from 'pg';
import { inventoryMigrations, pendingMigrations, schemaMigrationsTable, type Migration } from './schema';

export const POSTGRES_MIGRATIONS: Migration[] = inventoryMigrations('postgres');

/** Advisory lock keys (two int4): sitefleet's class, then what is locked. */
export const LOCK_CLASS = 0x5173_f1ee;
const MIGRATION_LOCK = 1;
export const WRITE_LOCK = 2;

/**
 * Brings the database to the newest schema. Refuses a database written by a newer sitefleet.
 * @returns the schema version now in place
 */
export async function migratePostgres(pool: Pool, migrations: Migration[] = POSTGRES_MIGRATIONS): Promise<number> {
  const client = await pool.connect();
  let broken: Error | undefined;
  try {
    await client.query('SELECT pg_advisory_lock($1, $2)', [LOCK_CLASS, MIGRATION_LOCK]);
    try {
      await client.query(schemaMigrationsTable('postgres'));
      const { rows } = await client.query<{ v: number | null }>('SELECT max(version) AS v FROM schema_migrations');
      const current = rows[0]?.v ?? 0;
      const pending = pendingMigrations(current, migrations);
      for (const m of pending) {
        await client.query('BEGIN');
        try {
          await client.query(m.sql);
          await client.query('INSERT INTO schema_migrations (version, name, applied_at) VALUES ($1, $2, now())', [
            m.version,
            m.name,
          ]);
          await client.query('COMMIT');
        } catch (err) {
          await client.query('ROLLBACK');
          throw err;
        }
      }
      return Math.max(current, ...pending.map((m) => m.version));
    } finally {
      await client.query('SELECT pg_advisory_unlock($1, $2)', [LOCK_CLASS, MIGRATION_LOCK]);
    }
  } catch (err) {
    // A connection that failed mid-way may still hold the session lock: do not hand it back to the pool.
    broken = err instanceof Error ? err : new Error(String(err));
    throw err;
  } finally {
    client.release(broken);
  }
}
