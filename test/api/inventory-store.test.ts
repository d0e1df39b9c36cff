import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, beforeEach, describe, test } from 'node:test';
import Database from 'better-sqlite3';
import { migrate, MIGRATIONS } from '../../inventory/migrations';
import { resolveGroupState, resolveWebGroup } from '../../inventory/resolve';
import { SqliteInventoryStore } from '../../inventory/sqlite-store';
import {
  AlreadyExistsError,
  ConflictError,
  InUseError,
  InvalidResourceError,
  MissingReferenceError,
  NotFoundError,
} from '../../inventory/store';
import { FAKE_KEY, server } from './harness';

void describe('SQLite inventory store', () => {
  let dir: string;
  let store: SqliteInventoryStore;
  let n = 0;

  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'sitefleet-inventory-'));
  });
  after(() => rmSync(dir, { recursive: true, force: true }));
  beforeEach(async () => {
    await store?.close();
    store = new SqliteInventoryStore(join(dir, `inv-${n++}.sqlite`));
  });

  async function seedPackAndCluster() {
    await store.create('server', server('m1'));
    await store.create('server', server('s1'));
    await store.create('server', server('s2'));
    await store.create('server', server('nfs1', { nfs: { flavour: 'ganesha' }, http: undefined }));
    await store.create('server', server('db1', { db: { type: 'mariadb' }, http: undefined }));
    await store.create('server', server('lb1', { lb: { type: 'haproxy' } }));
    await store.create('pack', {
      name: 'p1',
      master: 'm1',
      slaves: ['s1', 's2'],
      share: { server: 'nfs1', clients: '10.0.0.0/24' },
    });
    await store.create('cluster', { name: 'c1', members: ['s1', 's2'], loadBalancer: 'lb1' });
  }

  void test('runs each migration once and records it, and refuses a database from a newer sitefleet', async () => {
    const file = join(dir, 'migrations.sqlite');
    await new SqliteInventoryStore(file).close();
    const again = new SqliteInventoryStore(file);
    assert.equal(again.schemaVersion, MIGRATIONS.length);
    await again.close();
    const db = new Database(file);
    const rows = db.prepare('SELECT version, name FROM schema_migrations ORDER BY version').all();
    assert.deepEqual(
      rows,
      MIGRATIONS.map((m) => ({ version: m.version, name: m.name })),
    );
    db.prepare('INSERT INTO schema_migrations VALUES (999, ?, ?)').run('future', new Date().toISOString());
    assert.throws(() => migrate(db), /newer than this sitefleet knows/);
    db.close();
  });

  void test('a failing migration leaves no trace: its statements and its record roll back together', () => {
    const db = new Database(':memory:');
    migrate(db);
    const broken = [
      ...MIGRATIONS,
      { version: 2, name: 'broken', sql: 'CREATE TABLE extra (x); SELECT * FROM missing;' },
    ];
    assert.throws(() => migrate(db, broken), /no such table: missing/);
    assert.deepEqual(db.prepare("SELECT count(*) AS c FROM sqlite_master WHERE name = 'extra'").get(), { c: 0 });
    assert.deepEqual(db.prepare('SELECT MAX(version) AS v FROM schema_migrations').get(), { v: 1 });
    db.close();
  });

  void test('stores validated JSON with defaults applied and refuses invalid resources', async () => {
    const created = await store.create('server', { name: 'web1', host: '10.0.0.5', ssh: { hostKey: FAKE_KEY } });
    assert.deepEqual(created.ssh, { user: 'root', port: 22, hostKey: FAKE_KEY });
    assert.equal(created.aegirRoot, '/var/aegir');
    await assert.rejects(store.create('server', { name: 'Bad Name', host: 'x' }), InvalidResourceError);
    await assert.rejects(store.create('server', server('web1')), AlreadyExistsError);
    assert.deepEqual(await store.get('server', 'web1'), created);
  });

  void test('refuses references to missing servers and servers without the service their role needs', async () => {
    await store.create('server', server('m1'));
    await store.create('server', server('nohttp', { http: undefined }));
    await assert.rejects(
      store.create('pack', {
        name: 'p',
        master: 'm1',
        slaves: ['ghost'],
        share: { server: 'm1', clients: '10.0.0.0/24', clientFlavour: 'sshfs' },
      }),
      (err: unknown) =>
        err instanceof MissingReferenceError &&
        err.references.some((r) => r.kind === 'server' && r.name === 'ghost' && r.field === 'slaves.0'),
    );
    await assert.rejects(
      store.create('pack', {
        name: 'p',
        master: 'm1',
        slaves: ['nohttp'],
        share: { server: 'm1', clients: '10.0.0.0/24', clientFlavour: 'sshfs' },
      }),
      (err: unknown) => err instanceof InvalidResourceError && /no http service/.test(err.fields[0]!.rule),
    );
    // Kernel NFS clients need an NFS server on the share server.
    await assert.rejects(
      store.create('pack', { name: 'p', master: 'm1', share: { server: 'm1', clients: '10.0.0.0/24' } }),
      (err: unknown) => err instanceof InvalidResourceError && err.fields[0]!.field === 'share.server',
    );
    await assert.rejects(
      store.create('pack', {
        name: 'p',
        master: 'm1',
        slaves: ['m1'],
        share: { server: 'm1', clients: '10.0.0.0/24', clientFlavour: 'sshfs' },
      }),
      (err: unknown) => err instanceof InvalidResourceError && err.fields.some((f) => f.field === 'slaves'),
    );
    assert.deepEqual(await store.list('pack'), []);
  });

  void test('enforces site references, database needs and unique hosts', async () => {
    await seedPackAndCluster();
    await store.create('platform', {
      name: 'wp',
      target: { kind: 'cluster', name: 'c1' },
      source: { type: 'path', path: '/srv/wp' },
      profile: 'wordpress',
    });
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
      store.create('platform', {
        name: 'x',
        target: { kind: 'pack', name: 'nope' },
        source: { type: 'path', path: '/x' },
        profile: 'php',
      }),
      (err: unknown) => err instanceof MissingReferenceError && err.references[0]!.kind === 'pack',
    );
  });

  void test('packs and clusters share one namespace', async () => {
    await seedPackAndCluster();
    await assert.rejects(store.create('cluster', { name: 'p1', members: ['s1'] }), /must differ from every pack name/);
  });

  void test('refuses deletes that would orphan, and names what still uses the resource', async () => {
    await seedPackAndCluster();
    await store.create('platform', {
      name: 'wp',
      target: { kind: 'pack', name: 'p1' },
      source: { type: 'path', path: '/srv/wp' },
      profile: 'wordpress',
    });
    await store.create('site', { domain: 'a.example.com', platform: 'wp', dbServer: 'db1' });
    await assert.rejects(store.remove('server', 's1'), (err: unknown) => {
      assert.ok(err instanceof InUseError);
      assert.deepEqual(err.uses.map((u) => `${u.kind}/${u.key}/${u.role}`).sort(), [
        'cluster/c1/member',
        'pack/p1/slave',
      ]);
      return true;
    });
    await assert.rejects(store.remove('server', 'db1'), /site "a.example.com" \(dbServer\)/);
    await assert.rejects(store.remove('pack', 'p1'), /platform "wp" \(target\)/);
    await assert.rejects(store.remove('platform', 'wp'), /site "a.example.com"/);
    await assert.rejects(store.remove('server', 'ghost'), NotFoundError);
    await store.remove('site', 'a.example.com');
    await store.remove('platform', 'wp');
    await store.remove('pack', 'p1');
    await store.remove('cluster', 'c1');
    await store.remove('server', 's1');
    assert.equal(await store.get('server', 's1'), undefined);
  });

  void test('put tells created, updated and unchanged apart and guards changes servers would not follow', async () => {
    await seedPackAndCluster();
    assert.equal((await store.put('server', 'web9', server('web9'))).change, 'created');
    assert.equal((await store.put('server', 'web9', server('web9'))).change, 'unchanged');
    assert.equal((await store.put('server', 'web9', server('web9', { host: '10.9.9.9' }))).change, 'updated');
    await assert.rejects(store.put('server', 'web9', server('other')), /must be "web9"/);
    // s1 is a cluster member: it must keep its web server.
    await assert.rejects(store.put('server', 's1', server('s1', { http: undefined })), ConflictError);
    await store.create('platform', {
      name: 'wp',
      target: { kind: 'cluster', name: 'c1' },
      source: { type: 'path', path: '/srv/wp' },
      profile: 'php',
    });
    await store.create('site', { domain: 'a.example.com', platform: 'wp' });
    await assert.rejects(
      store.put('platform', 'wp', {
        name: 'wp',
        target: { kind: 'pack', name: 'p1' },
        source: { type: 'path', path: '/srv/wp' },
        profile: 'php',
      }),
      /cannot change until they are migrated/,
    );
    await store.create('platform', {
      name: 'wp2',
      target: { kind: 'cluster', name: 'c1' },
      source: { type: 'path', path: '/srv/wp' },
      profile: 'php',
    });
    await assert.rejects(store.put('site', 'a.example.com', { domain: 'a.example.com', platform: 'wp2' }), /migrate/);
  });

  void test('resolves a pack, a cluster and a server into the web group workflows act on', async () => {
    await seedPackAndCluster();
    const pack = await resolveWebGroup(store, { kind: 'pack', name: 'p1' });
    assert.deepEqual(
      pack.members.map((m) => m.name),
      ['m1', 's1', 's2'],
    );
    assert.deepEqual(pack.codeReceivers, ['m1']);
    assert.equal(pack.share?.server.name, 'nfs1');
    assert.equal(pack.share?.exportPath, '/var/aegir/platforms');
    assert.equal(pack.share?.clientFlavour, 'kernel');
    const cluster = await resolveWebGroup(store, { kind: 'cluster', name: 'c1' });
    assert.deepEqual(cluster.codeReceivers, ['s1', 's2']);
    assert.equal(cluster.loadBalancer?.name, 'lb1');
    const single = await resolveWebGroup(store, { kind: 'server', name: 'm1' });
    assert.deepEqual(single, {
      kind: 'server',
      name: 'm1',
      members: [await store.get('server', 'm1')],
      codeReceivers: ['m1'],
    });
    await assert.rejects(resolveWebGroup(store, { kind: 'cluster', name: 'nope' }), NotFoundError);

    await store.create('platform', {
      name: 'wp',
      target: { kind: 'cluster', name: 'c1' },
      source: { type: 'path', path: '/srv/wp' },
      profile: 'wordpress',
    });
    await store.create('site', { domain: 'a.example.com', platform: 'wp', dbServer: 'db1' });
    const state = await resolveGroupState(store, { kind: 'cluster', name: 'c1' });
    assert.deepEqual(
      state.platforms.map((p) => p.name),
      ['wp'],
    );
    assert.deepEqual(
      state.sites.map((s) => s.domain),
      ['a.example.com'],
    );
    assert.deepEqual(
      state.dbServers.map((s) => s.name),
      ['db1'],
    );
  });

  void test('applies an operation effect exactly once, when the operation completes', async () => {
    await seedPackAndCluster();
    await store.create('platform', {
      name: 'wp',
      target: { kind: 'cluster', name: 'c1' },
      source: { type: 'path', path: '/srv/wp' },
      profile: 'php',
    });
    await store.create('site', { domain: 'a.example.com', platform: 'wp' });
    const base = {
      type: 'DeleteSite',
      resource: 'site/a.example.com',
      status: 'RUNNING' as const,
      startedAt: new Date().toISOString(),
    };
    await store.recordOperation({
      ...base,
      id: 'site/a.example.com',
      runId: 'r1',
      effect: { type: 'forget', kind: 'site', key: 'a.example.com' },
    });
    await store.recordOperation({
      ...base,
      id: 'site/a.example.com',
      runId: 'r2',
      effect: { type: 'forget', kind: 'site', key: 'a.example.com' },
    });
    // A failed run changes nothing.
    const failed = await store.closeOperation('site/a.example.com', 'r1', 'FAILED', new Date());
    assert.equal(failed?.status, 'FAILED');
    assert.ok(await store.get('site', 'a.example.com'));
    const done = await store.closeOperation('site/a.example.com', 'r2', 'COMPLETED', new Date());
    assert.equal(done?.status, 'COMPLETED');
    assert.equal(await store.get('site', 'a.example.com'), undefined);
    // Closing again is a no-op.
    const again = await store.closeOperation('site/a.example.com', 'r2', 'FAILED', new Date());
    assert.equal(again?.status, 'COMPLETED');
    assert.equal((await store.getOperation('site/a.example.com'))?.runId, 'r2');

    // An effect that can no longer apply is recorded, not thrown.
    await store.create('site', { domain: 'b.example.com', platform: 'wp' });
    await store.recordOperation({
      ...base,
      id: 'platform/wp',
      runId: 'r3',
      type: 'DeletePlatform',
      resource: 'platform/wp',
      effect: { type: 'forget', kind: 'platform', key: 'wp' },
    });
    const blocked = await store.closeOperation('platform/wp', 'r3', 'COMPLETED', new Date());
    assert.match(blocked?.effectError ?? '', /still used by site "b.example.com"/);
    assert.ok(await store.get('platform', 'wp'));
  });

  void test('foreign keys back up the rule checks', async () => {
    await seedPackAndCluster();
    const db = new Database(store.file);
    db.pragma('foreign_keys = ON');
    assert.throws(() => db.prepare('DELETE FROM servers WHERE name = ?').run('m1'), /FOREIGN KEY constraint failed/);
    db.close();
  });
});
