/**
 * Migrations of the SQLite inventory (the tables are in ./schema, shared with PostgreSQL). Each migration runs
 * once, inside its own transaction, and is recorded in `schema_migrations`.
 */
import type Database from 'better-sqlite3';
import { inventoryMigrations, pendingMigrations, schemaMigrationsTable, type Migration } from './schema';

export type { Migration } from './schema';

export const MIGRATIONS: Migration[] = inventoryMigrations('sqlite');

/**
 * Brings the database to the newest schema. Refuses a database written by a newer sitefleet.
 * @returns the schema version now in place
 */
export function migrate(db: Database.Database, migrations: Migration[] = MIGRATIONS): number {
  db.exec(schemaMigrationsTable('sqlite'));
  const current = (db.prepare('SELECT MAX(version) AS v FROM schema_migrations').get() as { v: number | null }).v ?? 0;
  const pending = pendingMigrations(current, migrations);
  const record = db.prepare('INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)');
  for (const m of pending) {
    db.transaction(() => {
      db.exec(m.sql);
      record.run(m.version, m.name, new Date().toISOString());
    })();
  }
  return Math.max(current, ...pending.map((m) => m.version));
}
