/**
 * The inventory's tables, written once for both stores: the SQLite file (./migrations) and PostgreSQL
 * (./postgres-migrations) run the same migrations, each in its own dialect. Each resource is its validated JSON
 * document plus the key columns other resources refer to, with foreign keys backing up the rule checks.
 *
 * Append new migrations; never change what one that has shipped creates.
 */

export type SqlDialect = 'sqlite' | 'postgres';

export interface Migration {
  version: number;
  name: string;
  sql: string;
}

interface ColumnTypes {
  /** Keys and the columns that refer to them. PostgreSQL: bytewise, as in SQLite, whatever the collation. */
  key: string;
  text: string;
  time: string;
  /** The resource document, checked to be JSON (PostgreSQL: also that it names the row's key). */
  doc(keyColumn: string): string;
  /** An operation's effect: JSON or NULL. */
  effect: string;
}

const TYPES: Record<SqlDialect, ColumnTypes> = {
  sqlite: {
    key: 'TEXT',
    text: 'TEXT',
    time: 'TEXT',
    doc: () => 'TEXT NOT NULL CHECK (json_valid(doc))',
    effect: 'TEXT CHECK (effect IS NULL OR json_valid(effect))',
  },
  postgres: {
    key: 'text COLLATE "C"',
    text: 'text',
    time: 'timestamptz',
    doc: (keyColumn) => `jsonb NOT NULL CHECK (doc->>'${keyColumn}' = ${keyColumn})`,
    effect: 'jsonb',
  },
};

/** Version 1: servers, packs, clusters, platforms, sites and operations. */
function resourcesAndOperations(dialect: SqlDialect): string {
  const { key, text, time, doc, effect } = TYPES[dialect];
  const pg = dialect === 'postgres';
  return `
      CREATE TABLE servers (
        name ${key} PRIMARY KEY,
        host ${text} NOT NULL,
        doc ${doc('name')},
        created_at ${time} NOT NULL,
        updated_at ${time} NOT NULL
      );
      CREATE INDEX servers_host ON servers(host);

      CREATE TABLE packs (
        name ${key} PRIMARY KEY,
        master ${key} NOT NULL REFERENCES servers(name),
        share_server ${key} NOT NULL REFERENCES servers(name),
        doc ${doc('name')},
        created_at ${time} NOT NULL,
        updated_at ${time} NOT NULL
      );
      CREATE INDEX packs_master ON packs(master);
      CREATE INDEX packs_share_server ON packs(share_server);
      CREATE TABLE pack_slaves (
        pack ${key} NOT NULL REFERENCES packs(name) ON DELETE CASCADE,
        server ${key} NOT NULL REFERENCES servers(name),
        PRIMARY KEY (pack, server)
      );
      CREATE INDEX pack_slaves_server ON pack_slaves(server);

      CREATE TABLE clusters (
        name ${key} PRIMARY KEY,
        load_balancer ${key} REFERENCES servers(name),
        doc ${doc('name')},
        created_at ${time} NOT NULL,
        updated_at ${time} NOT NULL
      );
      CREATE INDEX clusters_load_balancer ON clusters(load_balancer);
      CREATE TABLE cluster_members (
        cluster ${key} NOT NULL REFERENCES clusters(name) ON DELETE CASCADE,
        server ${key} NOT NULL REFERENCES servers(name),
        PRIMARY KEY (cluster, server)
      );
      CREATE INDEX cluster_members_server ON cluster_members(server);

      CREATE TABLE platforms (
        name ${key} PRIMARY KEY,
        target_kind ${text} NOT NULL CHECK (target_kind IN ('server', 'pack', 'cluster')),
        target_name ${key} NOT NULL,
        target_server ${key} REFERENCES servers(name),
        target_pack ${key} REFERENCES packs(name),
        target_cluster ${key} REFERENCES clusters(name),
        doc ${doc('name')},
        created_at ${time} NOT NULL,
        updated_at ${time} NOT NULL,
        CHECK ((target_kind = 'server') = (target_server IS NOT NULL)),
        CHECK ((target_kind = 'pack') = (target_pack IS NOT NULL)),
        CHECK ((target_kind = 'cluster') = (target_cluster IS NOT NULL))
      );
      CREATE INDEX platforms_target ON platforms(target_kind, target_name);${
        // PostgreSQL does not index the referring side of a foreign key by itself (SQLite's stores shipped without).
        pg
          ? `
      CREATE INDEX platforms_target_server ON platforms(target_server);
      CREATE INDEX platforms_target_pack ON platforms(target_pack);
      CREATE INDEX platforms_target_cluster ON platforms(target_cluster);`
          : ''
      }

      CREATE TABLE sites (
        domain ${key} PRIMARY KEY,
        platform ${key} NOT NULL REFERENCES platforms(name),
        db_server ${key} REFERENCES servers(name),
        status ${text} NOT NULL,
        doc ${doc('domain')},
        created_at ${time} NOT NULL,
        updated_at ${time} NOT NULL
      );
      CREATE INDEX sites_platform ON sites(platform);
      CREATE INDEX sites_db_server ON sites(db_server);
      CREATE TABLE site_hosts (
        host ${key} PRIMARY KEY,
        site ${key} NOT NULL REFERENCES sites(domain) ON DELETE CASCADE
      );
      CREATE INDEX site_hosts_site ON site_hosts(site);

      CREATE TABLE operations (${
        // PostgreSQL: an insertion order, so that operations started in the same instant list in a stable order.
        pg
          ? `
        seq bigint GENERATED ALWAYS AS IDENTITY UNIQUE,`
          : ''
      }
        id ${key} NOT NULL,
        run_id ${key} NOT NULL,
        type ${text} NOT NULL,
        resource ${key} NOT NULL,
        status ${text} NOT NULL,
        started_at ${time} NOT NULL,
        closed_at ${time},
        effect ${effect},
        effect_error ${text},
        PRIMARY KEY (id, run_id)
      );
      CREATE INDEX operations_resource ON operations(resource, started_at);
      CREATE INDEX operations_status ON operations(status);
      CREATE INDEX operations_started_at ON operations(${pg ? 'started_at, seq' : 'started_at'});
    `;
}

/** The migrations of a dialect, oldest first. */
export function inventoryMigrations(dialect: SqlDialect): Migration[] {
  return [{ version: 1, name: 'resources and operations', sql: resourcesAndOperations(dialect) }];
}

/** The table that records which migrations a database has had. */
export function schemaMigrationsTable(dialect: SqlDialect): string {
  const { text, time } = TYPES[dialect];
  return `CREATE TABLE IF NOT EXISTS schema_migrations (
    version ${dialect === 'postgres' ? 'integer' : 'INTEGER'} PRIMARY KEY,
    name ${text} NOT NULL,
    applied_at ${time} NOT NULL
  )`;
}

/**
 * The migrations a database at schema version `current` still needs, oldest first.
 * @throws Error when `current` is newer than any migration (a database written by a newer sitefleet)
 */
export function pendingMigrations(current: number, migrations: readonly Migration[]): Migration[] {
  const newest = migrations.reduce((max, m) => Math.max(max, m.version), 0);
  if (current > newest) {
    throw new Error(
      `inventory schema version ${current} is newer than this sitefleet knows (${newest}); upgrade sitefleet`,
    );
  }
  return [...migrations].sort((a, b) => a.version - b.version).filter((m) => m.version > current);
}
