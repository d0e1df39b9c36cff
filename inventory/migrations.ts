/**
 * Versioned schema of the SQLite inventory. Each migration runs once, inside its own transaction, and is recorded
 * in `schema_migrations`. Append new migrations; never edit one that has shipped.
 */
import type Database from 'better-sqlite3';

export interface Migration {
  version: number;
  name: string;
  sql: string;
}

export const MIGRATIONS: Migration[] = [
  {
    version: 1,
    name: 'resources and operations',
    sql: `
      CREATE TABLE servers (
        name TEXT PRIMARY KEY,
        host TEXT NOT NULL,
        doc TEXT NOT NULL CHECK (json_valid(doc)),
        created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL
      );
      CREATE INDEX servers_host ON servers(host);

      CREATE TABLE packs (
        name TEXT PRIMARY KEY,
        master TEXT NOT NULL REFERENCES servers(name),
        share_server TEXT NOT NULL REFERENCES servers(name),
        doc TEXT NOT NULL CHECK (json_valid(doc)),
        created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL
      );
      CREATE INDEX packs_master ON packs(master);
      CREATE INDEX packs_share_server ON packs(share_server);
      CREATE TABLE pack_slaves (
        pack TEXT NOT NULL REFERENCES packs(name) ON DELETE CASCADE,
        server TEXT NOT NULL REFERENCES servers(name),
        PRIMARY KEY (pack, server)
      );
      CREATE INDEX pack_slaves_server ON pack_slaves(server);

      CREATE TABLE clusters (
        name TEXT PRIMARY KEY,
        load_balancer TEXT REFERENCES servers(name),
        doc TEXT NOT NULL CHECK (json_valid(doc)),
        created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL
      );
      CREATE INDEX clusters_load_balancer ON clusters(load_balancer);
      CREATE TABLE cluster_members (
        cluster TEXT NOT NULL REFERENCES clusters(name) ON DELETE CASCADE,
        server TEXT NOT NULL REFERENCES servers(name),
        PRIMARY KEY (cluster, server)
      );
      CREATE INDEX cluster_members_server ON cluster_members(server);

      CREATE TABLE platforms (
        name TEXT PRIMARY KEY,
        target_kind TEXT NOT NULL CHECK (target_kind IN ('server', 'pack', 'cluster')),
        target_name TEXT NOT NULL,
        target_server TEXT REFERENCES servers(name),
        target_pack TEXT REFERENCES packs(name),
        target_cluster TEXT REFERENCES clusters(name),
        doc TEXT NOT NULL CHECK (json_valid(doc)),
        created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL,
        CHECK ((target_kind = 'server') = (target_server IS NOT NULL)),
        CHECK ((target_kind = 'pack') = (target_pack IS NOT NULL)),
        CHECK ((target_kind = 'cluster') = (target_cluster IS NOT NULL))
      );
      CREATE INDEX platforms_target ON platforms(target_kind, target_name);

      CREATE TABLE sites (
        domain TEXT PRIMARY KEY,
        platform TEXT NOT NULL REFERENCES platforms(name),
        db_server TEXT REFERENCES servers(name),
        status TEXT NOT NULL,
        doc TEXT NOT NULL CHECK (json_valid(doc)),
        created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL
      );
      CREATE INDEX sites_platform ON sites(platform);
      CREATE INDEX sites_db_server ON sites(db_server);
      CREATE TABLE site_hosts (
        host TEXT PRIMARY KEY,
        site TEXT NOT NULL REFERENCES sites(domain) ON DELETE CASCADE
      );
      CREATE INDEX site_hosts_site ON site_hosts(site);

      CREATE TABLE operations (
        id TEXT NOT NULL,
        run_id TEXT NOT NULL,
        type TEXT NOT NULL,
        resource TEXT NOT NULL,
        status TEXT NOT NULL,
        started_at TEXT NOT NULL,
        closed_at TEXT,
        effect TEXT CHECK (effect IS NULL OR json_valid(effect)),
        effect_error TEXT,
        PRIMARY KEY (id, run_id)
      );
      CREATE INDEX operations_resource ON operations(resource, started_at);
      CREATE INDEX operations_status ON operations(status);
      CREATE INDEX operations_started_at ON operations(started_at);
    `,
  },
];

/**
 * Brings the database to the newest schema. Refuses a database written by a newer sitefleet.
 * @returns the schema version now in place
 */
export function migrate(db: Database.Database, migrations: Migration[] = MIGRATIONS): number {
  db.exec(`CREATE TABLE IF NOT EXISTS schema_migrations (
    version INTEGER PRIMARY KEY,
    name TEXT NOT NULL,
    applied_at TEXT NOT NULL
  )`);
  const current = (db.prepare('SELECT MAX(version) AS v FROM schema_migrations').get() as { v: number | null }).v ?? 0;
  const newest = migrations.reduce((max, m) => Math.max(max, m.version), 0);
  if (current > newest) {
    throw new Error(
      `inventory schema version ${current} is newer than this sitefleet knows (${newest}); upgrade sitefleet`,
    );
  }
  const record = db.prepare('INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)');
  for (const m of [...migrations].sort((a, b) => a.version - b.version)) {
    if (m.version <= current) continue;
    db.transaction(() => {
      db.exec(m.sql);
      record.run(m.version, m.name, new Date().toISOString());
    })();
  }
  return Math.max(current, newest);
}
