/**
 * The `InventoryStore` contract, run case for case against every backend: SQLite (a file) and PostgreSQL (a real
 * server, test/support/postgres.ts). Stores are opened the way the API opens them, with `openInventoryStore`.
 * Backend-specific checks (raw SQL) go through `Backend.sql`.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, afterEach, before, describe, test } from 'node:test';
import Database from 'better-sqlite3';
import { Client } from 'pg';
import { MIGRATIONS } from '../../inventory/migrations';
import { openInventoryStore, type InventorySettings } from '../../inventory/open-store';
import { POSTGRES_MIGRATIONS } from '../../inventory/postgres-migrations';
import { resolveGroupState, resolveWebGroup, storedTransferOptions } from '../../inventory/resolve';
import {
  AlreadyExistsError,
  ConflictError,
  InUseError,
  InvalidResourceError,
  MissingReferenceError,
  NotFoundError,
  type InventoryStore,
  type OperationRecord,
} from '../../inventory/store';
import { startTestPostgres, type TestPostgres } from '../support/postgres';

const FAKE_KEY = `SHA256:${'A'.repeat(43)}`;

function server(name: string, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return { name, host: '10.0.0.7', ssh: { hostKey: FAKE_KEY }, http: { type: 'nginx' }, ...extra };
}

interface Backend {
  name: string;
  setUp(): Promise<void>;
  tearDown(): Promise<void>;
  /** Settings naming a new, empty inventory. */
  fresh(): Promise<InventorySettings>;
  /** Runs raw SQL on the inventory (outside any store); returns rows of a query. */
  sql(at: InventorySettings, statement: string): Promise<Record<string, unknown>[]>;
  migrations: { version: number; name: string }[];
  foreignKeyError: RegExp;
}

function sqliteBackend(): Backend {
  let dir = '';
  let n = 0;
  return {
    name: 'SQLite',
    async setUp() {
      dir = mkdtempSync(join(tmpdir(), 'sitefleet-contract-'));
    },
    async tearDown() {
      rmSync(dir, { recursive: true, force: true });
    },
    async fresh() {
      return { inventoryFile: join(dir, `inventory-${n++}.sqlite`) };
    },
    async sql(at, statement) {
      const db = new Database(at.inventoryFile);
      try {
        db.pragma('foreign_keys = ON');
        const stmt = db.prepare(statement);
        if (stmt.reader) return stmt.all() as Record<string, unknown>[];
        stmt.run();
        return [];
      } finally {
        db.close();
      }
    },
    migrations: MIGRATIONS,
    foreignKeyError: /FOREIGN KEY constraint failed/,
  };
}

function postgresBackend(): Backend {
  let pg: TestPostgres | undefined;
  return {
    name: 'PostgreSQL',
    async setUp() {
      pg = await startTestPostgres();
    },
    async tearDown() {
      await pg?.stop();
    },
    async fresh() {
      assert.ok(pg, 'PostgreSQL is not started');
      // inventoryFile is ignored when inventoryUrl is set; point it somewhere that must stay unused.
      return { inventoryUrl: await pg.createDatabase(), inventoryFile: '/nonexistent/inventory.sqlite' };
    },
    async sql(at, statement) {
      const client = new Client({ connectionString: at.inventoryUrl });
      await client.connect();
      try {
        return (await client.query(statement)).rows as Record<string, unknown>[];
      } finally {
        await client.end();
      }
    },
    migrations: POSTGRES_MIGRATIONS,
    foreignKeyError: /violates foreign key constraint/,
  };
}

for (const backend of [sqliteBackend(), postgresBackend()]) {
  void describe(`inventory store contract: ${backend.name}`, () => {
    let at: InventorySettings;
    let store: InventoryStore;
    const opened: InventoryStore[] = [];

    /** Opens (another connection to) the inventory `at`. */
    async function open(where: InventorySettings = at): Promise<InventoryStore> {
      const s = await openInventoryStore(where);
      opened.push(s);
      return s;
    }

    async function fresh(): Promise<void> {
      at = await backend.fresh();
      store = await open();
    }

    before(() => backend.setUp());
    afterEach(async () => {
      for (const s of opened.splice(0)) await s.close();
    });
    after(() => backend.tearDown());

    async function seedPackAndCluster(s: InventoryStore = store) {
      await s.create('server', server('m1'));
      await s.create('server', server('s1'));
      await s.create('server', server('s2'));
      await s.create('server', server('nfs1', { nfs: { flavour: 'ganesha' }, http: undefined }));
      await s.create('server', server('db1', { db: { type: 'mariadb' }, http: undefined }));
      await s.create('server', server('lb1', { lb: { type: 'haproxy' } }));
      await s.create('pack', {
        name: 'p1',
        master: 'm1',
        slaves: ['s1', 's2'],
        share: { server: 'nfs1', clients: '10.0.0.0/24' },
      });
      await s.create('cluster', { name: 'c1', members: ['s1', 's2'], loadBalancer: 'lb1' });
    }

    const platform = (name: string, kind: 'server' | 'pack' | 'cluster', target: string, profile = 'php') => ({
      name,
      target: { kind, name: target },
      source: { type: 'path', path: `/srv/${name}` },
      profile,
    });

    void test('creates validated resources with defaults applied, reads and lists them in key order', async () => {
      await fresh();
      const created = await store.create('server', { name: 'web1', host: '10.0.0.5', ssh: { hostKey: FAKE_KEY } });
      assert.deepEqual(created.ssh, { user: 'root', port: 22, hostKey: FAKE_KEY });
      assert.equal(created.aegirRoot, '/var/aegir');
      assert.deepEqual(await store.get('server', 'web1'), created);
      assert.equal(await store.get('server', 'ghost'), undefined);
      for (const name of ['web3', 'web-2', 'a1', 'web10']) await store.create('server', server(name));
      assert.deepEqual(
        (await store.list('server')).map((s) => s.name),
        ['a1', 'web-2', 'web1', 'web10', 'web3'],
      );
      await assert.rejects(store.create('server', { name: 'Bad Name', host: 'x' }), (err: unknown) => {
        assert.ok(err instanceof InvalidResourceError);
        assert.ok(err.fields.some((f) => f.field === 'name'));
        return true;
      });
      await assert.rejects(store.create('server', server('web1')), AlreadyExistsError);
      assert.deepEqual(await store.get('server', 'web1'), created);
    });

    void test('put tells created, updated and unchanged apart and refuses a key other than the one named', async () => {
      await fresh();
      assert.equal((await store.put('server', 'web9', server('web9'))).change, 'created');
      const same = await store.put('server', 'web9', { ...server('web9'), ssh: { port: 22, hostKey: FAKE_KEY } });
      assert.equal(same.change, 'unchanged');
      const updated = await store.put('server', 'web9', server('web9', { host: '10.9.9.9' }));
      assert.equal(updated.change, 'updated');
      assert.equal((await store.get('server', 'web9'))?.host, '10.9.9.9');
      await assert.rejects(store.put('server', 'web9', server('other')), /must be "web9"/);
      await assert.rejects(store.put('server', 'web9', { name: 'web9' }), InvalidResourceError);
      assert.equal((await store.get('server', 'web9'))?.host, '10.9.9.9');
      assert.equal(await store.get('server', 'other'), undefined);
    });

    void test('refuses references to missing servers and servers without the service their role needs', async () => {
      await fresh();
      await store.create('server', server('m1'));
      await store.create('server', server('nohttp', { http: undefined }));
      const before = await store.dump();
      const share = { server: 'm1', clients: '10.0.0.0/24', clientFlavour: 'sshfs' };
      await assert.rejects(
        store.create('pack', { name: 'p', master: 'm1', slaves: ['ghost'], share }),
        (err: unknown) =>
          err instanceof MissingReferenceError &&
          err.references.some((r) => r.kind === 'server' && r.name === 'ghost' && r.field === 'slaves.0'),
      );
      await assert.rejects(
        store.create('pack', { name: 'p', master: 'm1', slaves: ['nohttp'], share }),
        (err: unknown) => err instanceof InvalidResourceError && /no http service/.test(err.fields[0]!.rule),
      );
      await assert.rejects(
        store.create('pack', { name: 'p', master: 'm1', share: { server: 'm1', clients: '10.0.0.0/24' } }),
        (err: unknown) => err instanceof InvalidResourceError && err.fields[0]!.field === 'share.server',
      );
      await assert.rejects(
        store.create('pack', { name: 'p', master: 'm1', slaves: ['m1'], share }),
        (err: unknown) => err instanceof InvalidResourceError && err.fields.some((f) => f.field === 'slaves'),
      );
      await assert.rejects(
        store.create('platform', platform('x', 'pack', 'nope')),
        (err: unknown) => err instanceof MissingReferenceError && err.references[0]!.kind === 'pack',
      );
      // Every refused write left the inventory as it was.
      assert.deepEqual(await store.dump(), before);
    });

    void test('enforces site references, database needs and unique hosts', async () => {
      await fresh();
      await seedPackAndCluster();
      await store.create('platform', platform('wp', 'cluster', 'c1', 'wordpress'));
      await assert.rejects(store.create('site', { domain: 'a.example.com', platform: 'wp' }), /dbServer is required/);
      await assert.rejects(
        store.create('site', { domain: 'a.example.com', platform: 'nope', dbServer: 'db1' }),
        MissingReferenceError,
      );
      await assert.rejects(
        store.create('site', { domain: 'a.example.com', platform: 'wp', dbServer: 'm1' }),
        /no db service/,
      );
      await store.create('site', {
        domain: 'a.example.com',
        aliases: ['www.a.example.com'],
        platform: 'wp',
        dbServer: 'db1',
      });
      await assert.rejects(
        store.create('site', {
          domain: 'b.example.com',
          aliases: ['www.a.example.com'],
          platform: 'wp',
          dbServer: 'db1',
        }),
        /belongs to a.example.com/,
      );
      await assert.rejects(
        store.create('site', { domain: 'www.a.example.com', platform: 'wp', dbServer: 'db1' }),
        /belongs to a.example.com/,
      );
      // Dropping an alias frees the host for another site.
      await store.put('site', 'a.example.com', { domain: 'a.example.com', platform: 'wp', dbServer: 'db1' });
      await store.create('site', {
        domain: 'b.example.com',
        aliases: ['www.a.example.com'],
        platform: 'wp',
        dbServer: 'db1',
      });
      assert.deepEqual(
        (await store.sitesOn('wp')).map((s) => s.domain),
        ['a.example.com', 'b.example.com'],
      );
    });

    void test('packs and clusters share one namespace', async () => {
      await fresh();
      await seedPackAndCluster();
      await assert.rejects(
        store.create('cluster', { name: 'p1', members: ['s1'] }),
        /must differ from every pack name/,
      );
      await assert.rejects(
        store.create('pack', { name: 'c1', master: 'm1', share: { server: 'nfs1', clients: '10.0.0.0/24' } }),
        /must differ from every cluster name/,
      );
    });

    void test('refuses deletes that would orphan, and names what still uses the resource', async () => {
      await fresh();
      await seedPackAndCluster();
      await store.create('platform', platform('wp', 'pack', 'p1', 'wordpress'));
      await store.create('site', { domain: 'a.example.com', platform: 'wp', dbServer: 'db1' });
      await store.create('platform', platform('solo', 'server', 'm1'));
      const before = await store.dump();
      assert.deepEqual(await store.usesOf('server', 'm1'), [
        { kind: 'pack', key: 'p1', role: 'master' },
        { kind: 'platform', key: 'solo', role: 'target' },
      ]);
      assert.deepEqual(await store.usesOf('server', 's1'), [
        { kind: 'pack', key: 'p1', role: 'slave' },
        { kind: 'cluster', key: 'c1', role: 'member' },
      ]);
      assert.deepEqual(await store.usesOf('site', 'a.example.com'), []);
      await assert.rejects(store.remove('server', 's1'), (err: unknown) => {
        assert.ok(err instanceof InUseError);
        assert.deepEqual(
          err.uses.map((u) => `${u.kind}/${u.key}/${u.role}`),
          ['pack/p1/slave', 'cluster/c1/member'],
        );
        return true;
      });
      await assert.rejects(store.remove('server', 'nfs1'), /pack "p1" \(share\)/);
      await assert.rejects(store.remove('server', 'lb1'), /cluster "c1" \(loadBalancer\)/);
      await assert.rejects(store.remove('server', 'db1'), /site "a.example.com" \(dbServer\)/);
      await assert.rejects(store.remove('pack', 'p1'), /platform "wp" \(target\)/);
      await assert.rejects(store.remove('platform', 'wp'), /site "a.example.com" \(platform\)/);
      await assert.rejects(store.remove('server', 'ghost'), NotFoundError);
      assert.deepEqual(await store.dump(), before);
      await store.remove('site', 'a.example.com');
      await store.remove('platform', 'wp');
      await store.remove('platform', 'solo');
      await store.remove('pack', 'p1');
      await store.remove('cluster', 'c1');
      for (const name of ['m1', 's1', 's2', 'nfs1', 'db1', 'lb1']) await store.remove('server', name);
      const empty = await store.dump();
      assert.deepEqual(
        [empty.servers, empty.packs, empty.clusters, empty.platforms, empty.sites],
        [[], [], [], [], []],
      );
      // A removed site's hosts are free again.
      await store.create('server', server('m1'));
      await store.create('platform', platform('wp', 'server', 'm1'));
      await store.create('site', { domain: 'a.example.com', platform: 'wp' });
    });

    void test('guards changes the servers would not follow', async () => {
      await fresh();
      await seedPackAndCluster();
      // s1 is a cluster member and a pack slave: it must keep its web server.
      await assert.rejects(store.put('server', 's1', server('s1', { http: undefined })), ConflictError);
      // nfs1 serves a kernel-NFS pack share.
      await assert.rejects(
        store.put('server', 'nfs1', server('nfs1', { http: undefined })),
        /pack "p1" \(share\) and the change breaks it/,
      );
      await store.create('platform', platform('wp', 'cluster', 'c1'));
      await store.create('site', { domain: 'a.example.com', platform: 'wp' });
      await assert.rejects(
        store.put('platform', 'wp', platform('wp', 'pack', 'p1')),
        /cannot change until they are migrated/,
      );
      await store.put('platform', 'wp', { ...platform('wp', 'cluster', 'c1'), source: { type: 'path', path: '/x' } });
      await store.create('platform', platform('wp2', 'cluster', 'c1'));
      await assert.rejects(store.put('site', 'a.example.com', { domain: 'a.example.com', platform: 'wp2' }), /migrate/);
      // A platform without sites may move.
      assert.equal((await store.put('platform', 'wp2', platform('wp2', 'pack', 'p1'))).change, 'updated');
      assert.deepEqual(
        (await store.platformsOn({ kind: 'pack', name: 'p1' })).map((p) => p.name),
        ['wp2'],
      );
      assert.deepEqual(
        (await store.platformsOn({ kind: 'cluster', name: 'c1' })).map((p) => p.name),
        ['wp'],
      );
      // The pack's uses moved along with the platform.
      await assert.rejects(store.remove('pack', 'p1'), /platform "wp2"/);
      await assert.rejects(store.remove('cluster', 'c1'), /platform "wp" \(target\)/);
    });

    void test('resolves a pack, a cluster and a server into the web group workflows act on', async () => {
      await fresh();
      await seedPackAndCluster();
      const pack = await resolveWebGroup(store, { kind: 'pack', name: 'p1' });
      assert.deepEqual(
        pack.members.map((m) => m.name),
        ['m1', 's1', 's2'],
      );
      assert.deepEqual(pack.codeReceivers, ['m1']);
      assert.equal(pack.share?.server.name, 'nfs1');
      const cluster = await resolveWebGroup(store, { kind: 'cluster', name: 'c1' });
      assert.deepEqual(cluster.codeReceivers, ['s1', 's2']);
      assert.equal(cluster.loadBalancer?.name, 'lb1');
      await assert.rejects(resolveWebGroup(store, { kind: 'cluster', name: 'nope' }), NotFoundError);
      await store.create('platform', platform('wp', 'cluster', 'c1', 'wordpress'));
      await store.create('site', { domain: 'a.example.com', platform: 'wp', dbServer: 'db1' });
      const state = await resolveGroupState(store, { kind: 'cluster', name: 'c1' });
      assert.deepEqual(
        [state.platforms.map((p) => p.name), state.sites.map((s) => s.domain), state.dbServers.map((s) => s.name)],
        [['wp'], ['a.example.com'], ['db1']],
      );
    });

    void test('keeps the transfer options of packs and clusters, and refuses bad ones naming the field', async () => {
      await fresh();
      await seedPackAndCluster();
      const clusterTransfer = { mode: 'auto', uplinkMbit: 200, memberLinkMbit: 1000.5, minMembers: 3, compress: false };
      const packTransfer = { mode: 'relay', minBytes: 0 };
      const cluster = { name: 'c1', members: ['s1', 's2'], loadBalancer: 'lb1', transfer: clusterTransfer };
      assert.equal((await store.put('cluster', 'c1', cluster)).change, 'updated');
      const pack = { ...(await store.get('pack', 'p1'))!, transfer: packTransfer };
      assert.equal((await store.put('pack', 'p1', pack)).change, 'updated');
      await store.create('cluster', { name: 'c2', members: ['s1'], transfer: { uplinkMbit: 50 } });

      // Read back from the database by another connection, exactly as written.
      await store.close();
      const again = await open();
      assert.deepEqual((await again.get('cluster', 'c1'))?.transfer, clusterTransfer);
      assert.deepEqual((await again.get('pack', 'p1'))?.transfer, packTransfer);
      assert.deepEqual((await again.get('cluster', 'c2'))?.transfer, { uplinkMbit: 50 });
      assert.deepEqual(await storedTransferOptions(again, { kind: 'cluster', name: 'c1' }), clusterTransfer);
      assert.equal(await storedTransferOptions(again, { kind: 'server', name: 's1' }), undefined);
      assert.equal((await again.put('cluster', 'c1', cluster)).change, 'unchanged');

      const before = await again.dump();
      for (const [transfer, field] of [
        [{ uplinkMbit: -5 }, 'transfer.uplinkMbit'],
        [{ mode: 'fast' }, 'transfer.mode'],
        [{ minMembers: 1 }, 'transfer.minMembers'],
        [{ uplink: 200 }, 'transfer'],
      ] as const) {
        await assert.rejects(
          again.put('cluster', 'c1', { ...cluster, transfer }),
          (err: unknown) => err instanceof InvalidResourceError && err.fields.some((f) => f.field === field),
        );
        await assert.rejects(
          again.create('cluster', { name: 'c3', members: ['s1'], transfer }),
          (err: unknown) => err instanceof InvalidResourceError && err.fields.some((f) => f.field === field),
        );
      }
      assert.deepEqual(await again.dump(), before);

      // Leaving `transfer` out of a replacement forgets the options.
      const { transfer: _dropped, ...plain } = cluster;
      assert.equal((await again.put('cluster', 'c1', plain)).change, 'updated');
      assert.equal((await again.get('cluster', 'c1'))?.transfer, undefined);
    });

    void test('records operations, finds the latest run, lists them newest first with filters', async () => {
      await fresh();
      const t = (s: number) => new Date(Date.UTC(2025, 0, 1, 12, 0, s, 123)).toISOString();
      const op = (id: string, runId: string, s: number, extra: Partial<OperationRecord> = {}): OperationRecord => ({
        id,
        runId,
        type: 'InstallSite',
        resource: `site/${id}`,
        status: 'RUNNING',
        startedAt: t(s),
        ...extra,
      });
      await store.recordOperation(op('a.example.com', 'r1', 1));
      await store.recordOperation(op('a.example.com', 'r2', 5));
      await store.recordOperation(op('b.example.com', 'r3', 3, { status: 'FAILED', closedAt: t(4) }));
      // Same start time: the one recorded last counts as newer.
      await store.recordOperation(op('c.example.com', 'r4', 5));
      await assert.rejects(store.recordOperation(op('a.example.com', 'r1', 9)));
      assert.deepEqual(await store.getOperation('a.example.com'), op('a.example.com', 'r2', 5));
      assert.deepEqual(await store.getOperation('a.example.com', 'r1'), op('a.example.com', 'r1', 1));
      assert.equal(await store.getOperation('a.example.com', 'nope'), undefined);
      assert.equal(await store.getOperation('nope'), undefined);
      const ids = (ops: OperationRecord[]) => ops.map((o) => o.runId);
      assert.deepEqual(ids(await store.listOperations()), ['r4', 'r2', 'r3', 'r1']);
      assert.deepEqual(ids(await store.listOperations({ limit: 2 })), ['r4', 'r2']);
      assert.deepEqual(ids(await store.listOperations({ status: 'RUNNING' })), ['r4', 'r2', 'r1']);
      assert.deepEqual(ids(await store.listOperations({ resource: 'site/a.example.com', limit: 1 })), ['r2']);
      assert.deepEqual(ids(await store.listOperations({ resource: 'site/b.example.com', status: 'RUNNING' })), []);
      assert.deepEqual(
        await store.getOperation('b.example.com'),
        op('b.example.com', 'r3', 3, { status: 'FAILED', closedAt: t(4) }),
      );
    });

    void test('applies an operation effect exactly once, when the operation completes', async () => {
      await fresh();
      await seedPackAndCluster();
      await store.create('platform', platform('wp', 'cluster', 'c1'));
      await store.create('site', { domain: 'a.example.com', platform: 'wp' });
      const base = { type: 'DeleteSite', resource: 'site/a.example.com', status: 'RUNNING' as const };
      const effect = { type: 'forget', kind: 'site', key: 'a.example.com' } as const;
      await store.recordOperation({
        ...base,
        id: 'site/a.example.com',
        runId: 'r1',
        startedAt: new Date().toISOString(),
        effect,
      });
      await store.recordOperation({
        ...base,
        id: 'site/a.example.com',
        runId: 'r2',
        startedAt: new Date().toISOString(),
        effect,
      });
      assert.equal(await store.closeOperation('site/a.example.com', 'nope', 'COMPLETED', new Date()), undefined);
      // Still running changes nothing; a failed run changes nothing but its status.
      assert.equal((await store.closeOperation('site/a.example.com', 'r1', 'RUNNING', new Date()))?.status, 'RUNNING');
      const closedAt = new Date(Date.UTC(2025, 5, 1, 8, 30, 0, 456));
      const failed = await store.closeOperation('site/a.example.com', 'r1', 'FAILED', closedAt);
      assert.equal(failed?.status, 'FAILED');
      assert.equal(failed?.closedAt, closedAt.toISOString());
      assert.deepEqual(failed?.effect, effect);
      assert.ok(await store.get('site', 'a.example.com'));
      const done = await store.closeOperation('site/a.example.com', 'r2', 'COMPLETED', new Date());
      assert.equal(done?.status, 'COMPLETED');
      assert.equal(done?.effectError, undefined);
      assert.equal(await store.get('site', 'a.example.com'), undefined);
      // Closing again is a no-op.
      const again = await store.closeOperation('site/a.example.com', 'r2', 'FAILED', new Date());
      assert.deepEqual(again, done);

      // An effect that can no longer apply is recorded, not thrown, and leaves the inventory as it was.
      await store.create('site', { domain: 'b.example.com', platform: 'wp' });
      await store.recordOperation({
        ...base,
        id: 'platform/wp',
        runId: 'r3',
        type: 'DeletePlatform',
        resource: 'platform/wp',
        startedAt: new Date().toISOString(),
        effect: { type: 'forget', kind: 'platform', key: 'wp' },
      });
      const inventoryBefore = await store.dump();
      const blocked = await store.closeOperation('platform/wp', 'r3', 'COMPLETED', new Date());
      assert.equal(blocked?.status, 'COMPLETED');
      assert.match(blocked?.effectError ?? '', /still used by site "b.example.com"/);
      assert.deepEqual((await store.dump()).platforms, inventoryBefore.platforms);
    });

    void test('patch-site and cluster membership effects go through the same rules', async () => {
      await fresh();
      await seedPackAndCluster();
      await store.create('server', server('s3'));
      await store.create('server', server('nohttp', { http: undefined }));
      await store.create('platform', platform('wp', 'cluster', 'c1'));
      await store.create('platform', platform('wp2', 'pack', 'p1'));
      await store.create('site', { domain: 'a.example.com', platform: 'wp' });
      let n = 0;
      const complete = async (effect: OperationRecord['effect']) => {
        const id = `op/${++n}`;
        await store.recordOperation({
          id,
          runId: 'r',
          type: 'T',
          resource: 'x',
          status: 'RUNNING',
          startedAt: new Date().toISOString(),
          ...(effect ? { effect } : {}),
        });
        return store.closeOperation(id, 'r', 'COMPLETED', new Date());
      };
      // A migration moves the site past the "use migrate" guard.
      assert.equal(
        (await complete({ type: 'patch-site', domain: 'a.example.com', patch: { platform: 'wp2' } }))?.effectError,
        undefined,
      );
      assert.equal((await store.get('site', 'a.example.com'))?.platform, 'wp2');
      assert.deepEqual(await store.usesOf('platform', 'wp2'), [
        { kind: 'site', key: 'a.example.com', role: 'platform' },
      ]);
      assert.deepEqual(await store.usesOf('platform', 'wp'), []);
      assert.match(
        (await complete({ type: 'patch-site', domain: 'a.example.com', patch: { platform: 'ghost' } }))?.effectError ??
          '',
        /unknown platform "ghost"/,
      );
      assert.match(
        (await complete({ type: 'patch-site', domain: 'z.example.com', patch: { status: 'disabled' } }))?.effectError ??
          '',
        /no site named "z.example.com"/,
      );
      assert.equal(
        (await complete({ type: 'add-cluster-member', cluster: 'c1', server: 's3' }))?.effectError,
        undefined,
      );
      assert.deepEqual((await store.get('cluster', 'c1'))?.members, ['s1', 's2', 's3']);
      assert.deepEqual(await store.usesOf('server', 's3'), [{ kind: 'cluster', key: 'c1', role: 'member' }]);
      assert.match(
        (await complete({ type: 'add-cluster-member', cluster: 'c1', server: 'nohttp' }))?.effectError ?? '',
        /no http service/,
      );
      assert.equal(
        (await complete({ type: 'remove-cluster-member', cluster: 'c1', server: 's1' }))?.effectError,
        undefined,
      );
      assert.deepEqual((await store.get('cluster', 'c1'))?.members, ['s2', 's3']);
      assert.deepEqual(await store.usesOf('server', 's1'), [{ kind: 'pack', key: 'p1', role: 'slave' }]);
    });

    void test('dumps the whole inventory, resources in key order and operations oldest first', async () => {
      await fresh();
      await seedPackAndCluster();
      await store.create('platform', platform('wp', 'pack', 'p1'));
      await store.create('site', { domain: 'b.example.com', platform: 'wp' });
      await store.create('site', { domain: 'a.example.com', platform: 'wp', aliases: ['www.a.example.com'] });
      const ops: OperationRecord[] = [
        {
          id: 'x',
          runId: 'r2',
          type: 'T',
          resource: 'site/a.example.com',
          status: 'RUNNING',
          startedAt: '2025-01-02T00:00:00.000Z',
        },
        {
          id: 'x',
          runId: 'r1',
          type: 'T',
          resource: 'site/a.example.com',
          status: 'COMPLETED',
          startedAt: '2025-01-01T00:00:00.000Z',
          closedAt: '2025-01-01T00:01:00.000Z',
          effect: { type: 'patch-site', domain: 'a.example.com', patch: { status: 'disabled' } },
          effectError: 'recorded as given',
        },
      ];
      for (const op of ops) await store.recordOperation(op);
      const dump = await store.dump();
      assert.equal(dump.schemaVersion, backend.migrations.length);
      assert.deepEqual(
        dump.servers.map((s) => s.name),
        ['db1', 'lb1', 'm1', 'nfs1', 's1', 's2'],
      );
      assert.deepEqual(dump.packs, [await store.get('pack', 'p1')]);
      assert.deepEqual(dump.clusters, [await store.get('cluster', 'c1')]);
      assert.deepEqual(dump.platforms, [await store.get('platform', 'wp')]);
      assert.deepEqual(
        dump.sites.map((s) => s.domain),
        ['a.example.com', 'b.example.com'],
      );
      assert.deepEqual(dump.sites[0]?.aliases, ['www.a.example.com']);
      assert.deepEqual(dump.operations, [ops[1], ops[0]]);
      // Round trip: a JSON copy of the dump is what the store holds.
      assert.deepEqual(JSON.parse(JSON.stringify(dump)), dump);
    });

    void test('runs each migration once: reopening keeps the data and records nothing new', async () => {
      await fresh();
      await seedPackAndCluster();
      const before = await store.dump();
      await store.close();
      const again = await open();
      assert.deepEqual(await again.dump(), before);
      await again.close();
      const third = await open();
      await third.ping();
      assert.deepEqual(
        (await backend.sql(at, 'SELECT version, name FROM schema_migrations ORDER BY version')).map((r) => ({
          version: Number(r.version),
          name: r.name,
        })),
        backend.migrations.map((m) => ({ version: m.version, name: m.name })),
      );
      await third.close();
      await backend.sql(
        at,
        "INSERT INTO schema_migrations (version, name, applied_at) VALUES (999, 'future', '2030-01-01T00:00:00Z')",
      );
      await assert.rejects(open(), /inventory schema version 999 is newer than this sitefleet knows/);
    });

    void test('serialises concurrent writers: the rule checks of a write see every write committed before it', async () => {
      await fresh();
      await seedPackAndCluster();
      const other = await open();
      // The same resource created through two connections at once: exactly one wins.
      const results = await Promise.allSettled(
        Array.from({ length: 6 }, (_, i) =>
          (i % 2 ? other : store).create('server', server('twin', { host: `10.1.0.${i}` })),
        ),
      );
      assert.equal(results.filter((r) => r.status === 'fulfilled').length, 1);
      assert.ok(results.every((r) => r.status === 'fulfilled' || r.reason instanceof AlreadyExistsError));
      // A pack and a cluster of the same name (a clash no key constraint catches): exactly one wins each time.
      for (let i = 0; i < 5; i++) {
        const name = `g${i}`;
        const [pack, cluster] = await Promise.allSettled([
          store.create('pack', { name, master: 'm1', share: { server: 'nfs1', clients: '10.0.0.0/24' } }),
          other.create('cluster', { name, members: ['s1'] }),
        ]);
        assert.equal(
          [pack, cluster].filter((r) => r.status === 'fulfilled').length,
          1,
          `${name}: ${String(pack.status)} ${String(cluster.status)}`,
        );
      }
      // Two API processes closing the same operation: the effect applies once.
      await store.create('platform', platform('wp', 'cluster', 'c1'));
      await store.create('site', { domain: 'a.example.com', platform: 'wp' });
      await store.recordOperation({
        id: 'd',
        runId: 'r',
        type: 'DeleteSite',
        resource: 'site/a.example.com',
        status: 'RUNNING',
        startedAt: new Date().toISOString(),
        effect: { type: 'forget', kind: 'site', key: 'a.example.com' },
      });
      const at1 = new Date(Date.UTC(2025, 0, 1, 0, 0, 1));
      const at2 = new Date(Date.UTC(2025, 0, 1, 0, 0, 2));
      const closes = await Promise.all([
        store.closeOperation('d', 'r', 'COMPLETED', at1),
        other.closeOperation('d', 'r', 'COMPLETED', at2),
      ]);
      // Both answer with the one close that took effect.
      assert.deepEqual(closes[0], closes[1]);
      assert.ok([at1.toISOString(), at2.toISOString()].includes(closes[0]?.closedAt ?? ''));
      assert.equal(closes[0]?.effectError, undefined);
      assert.equal(await store.get('site', 'a.example.com'), undefined);
    });

    void test('foreign keys back up the rule checks', async () => {
      await fresh();
      await seedPackAndCluster();
      await assert.rejects(backend.sql(at, "DELETE FROM servers WHERE name = 'm1'"), backend.foreignKeyError);
      await assert.rejects(
        backend.sql(at, "INSERT INTO cluster_members (cluster, server) VALUES ('c1', 'ghost')"),
        backend.foreignKeyError,
      );
      assert.ok(await store.get('server', 'm1'));
    });

    void test('answers ping, and close may be called twice', async () => {
      await fresh();
      await store.ping();
      await store.close();
      await store.close();
    });
  });
}
