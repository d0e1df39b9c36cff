import assert from 'node:assert/strict';
import { mkdirSync, symlinkSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { gzipSync } from 'node:zlib';
import { displayDomain, domainName, hostAddress } from '../../domain/fields';
import { packSchema } from '../../domain/model';
import { FAKE_KEY, server, startHarness, type Harness } from './harness';

/** Strings that must never reach a shell, a path or a config file. */
const INJECTIONS = [
  '; rm -rf /',
  '$(id)',
  '`id`',
  '../',
  '../../etc/passwd',
  'a\nb',
  'a\u0000b',
  'x'.repeat(10_000),
  '-oProxyCommand=sh',
  ' spaced ',
  "'quoted'",
  '<script>',
  '',
];

function setPath(body: unknown, path: string, value: unknown): unknown {
  const copy = structuredClone(body) as Record<string, unknown>;
  const keys = path.split('.');
  let node: Record<string, unknown> = copy;
  for (const k of keys.slice(0, -1)) node = node[k] as Record<string, unknown>;
  node[keys[keys.length - 1]!] = value;
  return copy;
}

const validServer = {
  name: 'newsrv',
  host: '10.0.0.50',
  ssh: { user: 'root', port: 22, keyPath: '/root/.ssh/id_ed25519', hostKey: FAKE_KEY },
  address: '10.0.0.50',
  http: {
    type: 'nginx',
    phpFpmSocket: '/run/php/php8.2-fpm.sock',
    https: { certificate: '/etc/ssl/a.pem', key: '/etc/ssl/a.key' },
  },
  db: { type: 'mariadb' },
  nfs: { flavour: 'ganesha' },
  aegirRoot: '/var/aegir',
  aegirUser: 'aegir',
};
const validPack = {
  name: 'newpack',
  master: 'web1',
  slaves: ['web2'],
  share: { server: 'nfs1', exportPath: '/var/aegir/platforms', clients: '10.0.0.0/24', clientFlavour: 'kernel' },
};
const validCluster = { name: 'newcl', members: ['web1'], files: 'none', loadBalancer: 'web2' };
const validPathPlatform = {
  name: 'newpf',
  target: { kind: 'cluster', name: 'cl' },
  source: { type: 'path', path: '/srv/code' },
  profile: 'php',
};
const validGitPlatform = {
  name: 'newpf',
  target: { kind: 'cluster', name: 'cl' },
  source: { type: 'git', url: 'https://example.com/x.git', ref: 'main' },
  profile: 'php',
};
const validSite = {
  domain: 'new.example.com',
  aliases: ['www.new.example.com'],
  platform: 'wp',
  dbServer: 'db1',
  status: 'enabled',
};
const validSchedule = { action: 'resync', target: { kind: 'cluster', name: 'cl' }, every: '1h', note: 'nightly' };

/** Every text field of every request body, with a valid body to put it in. */
const TEXT_FIELDS: { what: string; method: string; path: string; body: unknown; fields: string[] }[] = [
  {
    what: 'server',
    method: 'POST',
    path: '/v1/servers',
    body: validServer,
    fields: [
      'name',
      'host',
      'ssh.user',
      'ssh.keyPath',
      'ssh.hostKey',
      'address',
      'http.type',
      'http.phpFpmSocket',
      'http.https.certificate',
      'http.https.key',
      'db.type',
      'nfs.flavour',
      'aegirRoot',
      'aegirUser',
    ],
  },
  {
    what: 'server update',
    method: 'PUT',
    path: '/v1/servers/web3',
    body: { ...validServer, name: 'web3' },
    fields: [
      'host',
      'ssh.user',
      'ssh.keyPath',
      'ssh.hostKey',
      'address',
      'http.phpFpmSocket',
      'aegirRoot',
      'aegirUser',
    ],
  },
  {
    what: 'pack',
    method: 'POST',
    path: '/v1/packs',
    body: validPack,
    fields: ['name', 'master', 'slaves.0', 'share.server', 'share.exportPath', 'share.clients', 'share.clientFlavour'],
  },
  {
    what: 'cluster',
    method: 'POST',
    path: '/v1/clusters',
    body: validCluster,
    fields: ['name', 'members.0', 'files', 'loadBalancer'],
  },
  {
    what: 'platform (path)',
    method: 'POST',
    path: '/v1/platforms',
    body: validPathPlatform,
    fields: ['name', 'target.kind', 'target.name', 'source.type', 'source.path', 'profile'],
  },
  {
    what: 'platform (git)',
    method: 'POST',
    path: '/v1/platforms',
    body: validGitPlatform,
    fields: ['source.url', 'source.ref'],
  },
  {
    what: 'site',
    method: 'POST',
    path: '/v1/sites',
    body: validSite,
    fields: ['domain', 'aliases.0', 'platform', 'dbServer', 'status'],
  },
  {
    what: 'site update',
    method: 'PUT',
    path: '/v1/sites/a.example.com',
    body: { ...validSite, domain: 'a.example.com', aliases: [] },
    fields: ['dbServer', 'status'],
  },
  {
    what: 'migrate',
    method: 'POST',
    path: '/v1/sites/a.example.com/migrate',
    body: { platform: 'wp2' },
    fields: ['platform'],
  },
  {
    what: 'restore',
    method: 'POST',
    path: '/v1/sites/a.example.com/restore',
    body: { backup: 'a.tar.gz' },
    fields: ['backup'],
  },
  { what: 'add member', method: 'POST', path: '/v1/clusters/cl/members', body: { server: 'web3' }, fields: ['server'] },
  {
    what: 'schedule',
    method: 'POST',
    path: '/v1/schedules',
    body: validSchedule,
    fields: ['action', 'target.kind', 'target.name', 'every', 'note'],
  },
];

void describe('bad input', () => {
  let h: Harness;
  let inventoryBefore: unknown;
  let workflowsBefore: string[];
  let schedulesBefore: unknown;
  /** An operation left running on site a.example.com (no worker serves the harness's task queue). */
  let siteBackup: { operationId: string; runId: string };

  before(async () => {
    h = await startHarness();
    for (const name of ['web1', 'web2', 'web3']) await h.store.create('server', server(name));
    await h.store.create('server', server('db1', { http: undefined, db: { type: 'mariadb' } }));
    await h.store.create('server', server('nfs1', { http: undefined, nfs: { flavour: 'ganesha' } }));
    await h.store.create('pack', { name: 'pk', master: 'web1', share: { server: 'nfs1', clients: '10.0.0.0/24' } });
    await h.store.create('cluster', { name: 'cl', members: ['web1', 'web2'] });
    await h.store.create('platform', { ...validPathPlatform, name: 'wp', profile: 'wordpress' });
    await h.store.create('platform', { ...validPathPlatform, name: 'wp2', profile: 'wordpress' });
    await h.store.create('site', { domain: 'a.example.com', platform: 'wp', dbServer: 'db1' });
    // An operation and a schedule exist too, so that "unchanged" covers them.
    assert.equal((await h.request('POST', '/v1/servers/web1/verify')).status, 202);
    assert.equal((await h.request('POST', '/v1/schedules', validSchedule)).status, 201);
    const backup = await h.request('POST', '/v1/sites/a.example.com/backup');
    assert.equal(backup.status, 202);
    siteBackup = backup.body;
    inventoryBefore = await h.store.dump();
    workflowsBefore = await h.workflowIds();
    schedulesBefore = (await h.request('GET', '/v1/schedules')).body;
  });
  after(async () => {
    await h?.close();
  });

  /** Sends the request and checks the refusal: the status, and a field named when the status is 400. */
  async function refused(method: string, path: string, body: unknown, expect: number[] = [400], raw?: string) {
    const res = await h.request(method, path, body, raw !== undefined ? { raw } : {});
    assert.ok(
      expect.includes(res.status),
      `${method} ${path} ${JSON.stringify(body)?.slice(0, 200)} answered ${res.status} ${JSON.stringify(res.body)?.slice(0, 300)}`,
    );
    if (res.status === 400 && res.body?.error === 'invalid request') {
      assert.ok(Array.isArray(res.body.fields) && res.body.fields.length > 0);
      for (const f of res.body.fields) assert.deepEqual(Object.keys(f).sort(), ['field', 'rule']);
    }
    return res;
  }

  void test('refuses injection strings in every text field with 400 naming the field', async () => {
    for (const target of TEXT_FIELDS) {
      // The valid body itself would be accepted (checked without sending: the rules say so).
      for (const field of target.fields) {
        for (const value of INJECTIONS) {
          const res = await refused(target.method, target.path, setPath(target.body, field, value), [400]);
          const fields = (res.body.fields as { field: string }[]).map((f) => f.field);
          assert.ok(
            fields.includes(field),
            `${target.what}: ${field}=${JSON.stringify(value).slice(0, 40)} names ${fields.join(', ')}`,
          );
        }
      }
    }
  });

  void test('refuses injection strings in URL paths and query strings', async () => {
    for (const value of INJECTIONS.filter((v) => v !== '')) {
      const seg = encodeURIComponent(value);
      for (const [method, path] of [
        ['GET', `/v1/servers/${seg}`],
        ['PUT', `/v1/servers/${seg}`],
        ['DELETE', `/v1/servers/${seg}`],
        ['POST', `/v1/servers/${seg}/verify`],
        ['POST', `/v1/packs/${seg}/setup-share`],
        ['POST', `/v1/clusters/${seg}/resync`],
        ['POST', `/v1/platforms/${seg}/deploy`],
        ['DELETE', `/v1/platforms/${seg}`],
        ['POST', `/v1/sites/${seg}/install`],
        ['DELETE', `/v1/sites/${seg}`],
        ['DELETE', `/v1/clusters/cl/members/${seg}`],
        ['GET', `/v1/operations/site/${seg}`],
        ['GET', `/v1/schedules/resync/cluster/${seg}`],
        ['DELETE', `/v1/sites/a.example.com?forget=${seg}`],
        ['GET', `/v1/operations?resource=${seg}`],
        ['GET', `/v1/operations/site/a.example.com?runId=${seg}`],
      ] as const) {
        await refused(method, path, method === 'PUT' ? server('web1') : undefined, [400, 404]);
      }
    }
  });

  void test('refuses wrong types, unknown fields, missing fields and out-of-range values', async () => {
    const cases: [string, string, unknown][] = [
      ['POST', '/v1/servers', setPath(validServer, 'ssh.port', '22')],
      ['POST', '/v1/servers', setPath(validServer, 'ssh.port', 70000)],
      ['POST', '/v1/servers', setPath(validServer, 'ssh.port', 22.5)],
      ['POST', '/v1/servers', setPath(validServer, 'ssh.port', -1)],
      ['POST', '/v1/servers', setPath(validServer, 'name', 42)],
      ['POST', '/v1/servers', setPath(validServer, 'name', null)],
      ['POST', '/v1/servers', setPath(validServer, 'name', ['web9'])],
      ['POST', '/v1/servers', setPath(validServer, 'ssh', 'root@host')],
      ['POST', '/v1/servers', setPath(validServer, 'http', true)],
      ['POST', '/v1/servers', setPath(validServer, 'extra', 'field')],
      ['POST', '/v1/servers', setPath(validServer, 'ssh.password', 'hunter2')],
      ['POST', '/v1/servers', { name: 'only-name' }],
      ['POST', '/v1/servers', []],
      ['POST', '/v1/servers', 'a string'],
      ['POST', '/v1/servers', 42],
      ['POST', '/v1/servers', null],
      ['POST', '/v1/packs', setPath(validPack, 'slaves', 'web2')],
      ['POST', '/v1/packs', setPath(validPack, 'slaves', ['web1'])],
      ['POST', '/v1/packs', setPath(validPack, 'slaves', ['web2', 'web2'])],
      ['POST', '/v1/packs', setPath(validPack, 'share.clients', '10.0.0.0/33')],
      ['POST', '/v1/clusters', setPath(validCluster, 'members', [])],
      [
        'POST',
        '/v1/clusters',
        setPath(
          validCluster,
          'members',
          Array.from({ length: 65 }, (_, i) => `w${i}`),
        ),
      ],
      ['POST', '/v1/clusters', setPath(validCluster, 'members', ['db1'])],
      ['POST', '/v1/platforms', setPath(validPathPlatform, 'source', { type: 'ftp', url: 'ftp://x' })],
      ['POST', '/v1/platforms', setPath(validPathPlatform, 'source.extra', 1)],
      ['POST', '/v1/sites', setPath(validSite, 'https', 'yes')],
      ['POST', '/v1/sites', setPath(validSite, 'aliases', 'www.new.example.com')],
      ['POST', '/v1/sites', setPath(validSite, 'aliases', ['new.example.com'])],
      ['POST', '/v1/sites', setPath(validSite, 'aliases', ['a.example.com'])],
      ['POST', '/v1/sites', setPath(validSite, 'domain', 'UPPER.example.com')],
      ['POST', '/v1/sites', setPath(validSite, 'dbServer', 'web1')],
      ['POST', '/v1/sites', { ...validSite, dbServer: undefined }],
      ['PUT', '/v1/sites/a.example.com', { ...validSite, domain: 'a.example.com', aliases: [], platform: 'wp2' }],
      ['POST', '/v1/sites/a.example.com/install', { now: true }],
      ['POST', '/v1/sites/a.example.com/migrate', {}],
      ['POST', '/v1/sites/a.example.com/migrate', { platform: 'wp' }],
      ['POST', '/v1/sites/a.example.com/restore', { backup: 7 }],
      ['POST', '/v1/clusters/cl/members', { server: 'web1' }],
      ['DELETE', '/v1/clusters/cl/members/web3', undefined],
      ['POST', '/v1/schedules', setPath(validSchedule, 'every', '0m')],
      ['POST', '/v1/schedules', setPath(validSchedule, 'every', 60)],
      ['POST', '/v1/schedules', setPath(validSchedule, 'target.kind', 'server')],
      ['PATCH', '/v1/schedules/resync/cluster/cl', { paused: 'yes' }],
      ['GET', '/v1/operations?limit=0', undefined],
      ['GET', '/v1/operations?limit=many', undefined],
    ];
    for (const [method, path, body] of cases) await refused(method, path, body, [400, 409]);
  });

  void test('answers 404 naming an unknown reference', async () => {
    const cases: [string, string, unknown, RegExp][] = [
      ['POST', '/v1/packs', setPath(validPack, 'master', 'ghost'), /unknown server "ghost" \(master\)/],
      ['POST', '/v1/packs', setPath(validPack, 'share.server', 'ghost'), /unknown server "ghost" \(share.server\)/],
      [
        'POST',
        '/v1/clusters',
        setPath(validCluster, 'members', ['web1', 'ghost']),
        /unknown server "ghost" \(members.1\)/,
      ],
      [
        'POST',
        '/v1/clusters',
        setPath(validCluster, 'loadBalancer', 'ghost'),
        /unknown server "ghost" \(loadBalancer\)/,
      ],
      [
        'POST',
        '/v1/platforms',
        setPath(validPathPlatform, 'target', { kind: 'pack', name: 'ghost' }),
        /unknown pack "ghost"/,
      ],
      [
        'POST',
        '/v1/platforms',
        setPath(validPathPlatform, 'target', { kind: 'server', name: 'ghost' }),
        /unknown server "ghost"/,
      ],
      ['POST', '/v1/sites', setPath(validSite, 'platform', 'ghost'), /unknown platform "ghost" \(platform\)/],
      ['POST', '/v1/sites', setPath(validSite, 'dbServer', 'ghost'), /unknown server "ghost" \(dbServer\)/],
      ['POST', '/v1/sites/a.example.com/migrate', { platform: 'ghost' }, /no platform named "ghost"/],
      ['POST', '/v1/clusters/cl/members', { server: 'ghost' }, /no server named "ghost"/],
      ['DELETE', '/v1/clusters/cl/members/ghost', undefined, /no server named "ghost"/],
      ['POST', '/v1/schedules', setPath(validSchedule, 'target.name', 'ghost'), /no cluster named "ghost"/],
      ['POST', '/v1/servers/ghost/verify', undefined, /no server named "ghost"/],
      ['POST', '/v1/packs/ghost/setup-share', undefined, /no pack named "ghost"/],
      ['POST', '/v1/clusters/ghost/verify', undefined, /no cluster named "ghost"/],
      ['POST', '/v1/packs/ghost/resync', undefined, /no pack named "ghost"/],
      ['POST', '/v1/platforms/ghost/deploy', undefined, /no platform named "ghost"/],
      ['POST', '/v1/platforms/ghost/delete', undefined, /no platform named "ghost"/],
      ['POST', '/v1/sites/ghost.example.com/install', undefined, /no site named "ghost.example.com"/],
      ['DELETE', '/v1/sites/ghost.example.com', undefined, /no site named "ghost.example.com"/],
      ['DELETE', '/v1/servers/ghost', undefined, /no server named "ghost"/],
      ['PATCH', '/v1/schedules/verify/cluster/ghost', { paused: true }, /no schedule verify\/cluster\/ghost/],
    ];
    for (const [method, path, body, message] of cases) {
      const res = await refused(method, path, body, [404]);
      assert.match(res.body.error, message);
    }
  });

  void test('refuses oversized and malformed bodies', async () => {
    const big = { ...validServer, aegirRoot: `/${'a'.repeat(70_000)}` };
    const tooLarge = await refused('POST', '/v1/servers', big, [413]);
    assert.equal(tooLarge.body.error, 'request body too large');
    const malformed = await refused('POST', '/v1/servers', undefined, [400], '{"name": "x",');
    assert.equal(malformed.body.error, 'request body is not valid JSON');
    // JSON sent as text/plain is refused as such, not read as a missing body.
    const res = await h.request('POST', '/v1/servers', undefined, {
      raw: JSON.stringify(validServer),
      headers: { 'content-type': 'text/plain' },
    });
    assert.equal(res.status, 415);
    assert.match(res.body.error, /request body must be JSON: send Content-Type: application\/json \(got text\/plain\)/);
  });

  /** A 400 whose fields include `field` with a rule matching `rule`. */
  async function refusedField(method: string, path: string, body: unknown, field: string, rule: RegExp) {
    const res = await refused(method, path, body, [400]);
    const problems = (res.body.fields as { field: string; rule: string }[]).filter((f) => f.field === field);
    assert.ok(
      problems.some((p) => rule.test(p.rule)),
      `${method} ${path}: expected ${field} refused by ${String(rule)}, got ${JSON.stringify(res.body.fields)}`,
    );
    return res;
  }

  void test('case 1: domains that are not valid IDNA are refused (invalid punycode, "--" in positions 3-4)', async () => {
    await refusedField(
      'POST',
      '/v1/sites',
      setPath(validSite, 'domain', 'xn--a.example.com'),
      'domain',
      /not valid punycode/,
    );
    await refusedField(
      'POST',
      '/v1/sites',
      setPath(validSite, 'domain', 'ab--cd.example.com'),
      'domain',
      /positions 3-4/,
    );
    await refusedField(
      'POST',
      '/v1/sites',
      setPath(validSite, 'aliases', ['xn--a.example.com']),
      'aliases.0',
      /punycode/,
    );
    await refusedField(
      'POST',
      '/v1/sites',
      setPath(validSite, 'domain', 'bücher.example'),
      'domain',
      /xn--bcher-kva\.example/,
    );
    // Valid A-labels still pass (checked without changing the inventory).
    for (const ok of ['xn--bcher-kva.example', 'xn--ls8h.la', 'a-b.example.com', 'new.example.com']) {
      assert.ok(domainName.safeParse(ok).success, ok);
    }
    // The CLI's site list and the fleet page show the Unicode form beside the punycode.
    assert.equal(displayDomain('xn--bcher-kva.example'), 'bücher.example (xn--bcher-kva.example)');
    assert.equal(displayDomain('blog.example.com'), 'blog.example.com');
  });

  void test('case 2: numeric host names that are not a dotted-quad IPv4 address are refused', async () => {
    for (const host of ['256.1.1.1', '127.1', '0177.0.0.1', '0x7f.1', '10.0.0.01', '1.2.3.4.5']) {
      await refusedField('POST', '/v1/servers', setPath(validServer, 'host', host), 'host', /dotted-quad IPv4/);
      await refusedField('POST', '/v1/servers', setPath(validServer, 'address', host), 'address', /dotted-quad IPv4/);
    }
    for (const ok of ['10.0.0.1', '255.255.255.255', 'web1', 'db.internal', 'h2.example.com', '3com.example']) {
      assert.ok(hostAddress.safeParse(ok).success, ok);
    }
  });

  void test('case 3: aegirRoot "/", system directories, relative and ".." paths are refused', async () => {
    for (const root of ['/', '/etc', '/var', '/var/', '/usr', '/usr/lib/aegir', '/proc/1', '/root', '/tmp']) {
      await refusedField(
        'POST',
        '/v1/servers',
        setPath(validServer, 'aegirRoot', root),
        'aegirRoot',
        /system directory/,
      );
    }
    for (const root of ['var/aegir', './aegir', '/var/aegir/../../etc', '/var/aegir/..']) {
      await refused('POST', '/v1/servers', setPath(validServer, 'aegirRoot', root), [400]);
    }
    await refusedField(
      'POST',
      '/v1/packs',
      setPath(validPack, 'share.exportPath', '/'),
      'share.exportPath',
      /system directory/,
    );
  });

  void test('case 4: pack share clients open to the world or with host bits set are refused, saying which', async () => {
    const world = await refusedField(
      'POST',
      '/v1/packs',
      setPath(validPack, 'share.clients', '0.0.0.0/0'),
      'share.clients',
      /open to anyone.*exportToAnyone/,
    );
    assert.ok(world);
    await refusedField(
      'POST',
      '/v1/packs',
      setPath(validPack, 'share.clients', '10.250.0.1/24'),
      'share.clients',
      /host bits set: refused.*10\.250\.0\.0\/24/,
    );
    await refusedField(
      'POST',
      '/v1/packs',
      setPath(validPack, 'share.clients', '10.250.7.9/16'),
      'share.clients',
      /10\.250\.0\.0\/16/,
    );
    // Forced explicitly, the world export is accepted (checked without changing the inventory).
    const forced = setPath(setPath(validPack, 'share.clients', '0.0.0.0/0'), 'share.exportToAnyone', true);
    assert.ok(packSchema.safeParse(forced).success);
    assert.ok(packSchema.safeParse(setPath(validPack, 'share.clients', '10.0.0.7/32')).success);
  });

  void test('case 5: a git URL whose host or user starts with "-" is refused', async () => {
    for (const url of ['ssh://-oProxyCommand/x', 'git://-x/y', 'ssh://-x:22/y', 'ssh://-oProxy@host/x']) {
      await refusedField(
        'POST',
        '/v1/platforms',
        setPath(validGitPlatform, 'source.url', url),
        'source.url',
        /does not start with "-"/,
      );
    }
  });

  void test('case 6: a key that appears twice in a JSON object is refused with 400 naming it', async () => {
    const twice = await refused('POST', '/v1/servers', undefined, [400], '{"name": "dup1", "name": "dup2"}');
    assert.deepEqual(twice.body.fields, [
      { field: 'name', rule: 'appears more than once in its JSON object; send each key once' },
    ]);
    const body = JSON.stringify(validServer).replace('"port":22', '"port":22,"port":2222');
    const nested = await refused('POST', '/v1/servers', undefined, [400], body);
    assert.equal(nested.body.fields[0].field, 'ssh.port');
    const inArray = await refused(
      'POST',
      '/v1/packs',
      undefined,
      [400],
      '{"name":"p9","master":"web1","slaves":[{"a":1,"a":2}]}',
    );
    assert.equal(inArray.body.fields[0].field, 'slaves.0.a');
    // The same key in two different objects is fine: the refusal is for this body's other problems, not a duplicate.
    const distinct = await refused('POST', '/v1/packs', undefined, [400], '{"name":"p9","share":{"name":"x"}}');
    assert.ok(!JSON.stringify(distinct.body).includes('more than once'));
  });

  void test('case 7: a site cannot be forgotten while an operation on it runs (409 naming the run)', async () => {
    const res = await refused('DELETE', '/v1/sites/a.example.com?forget=true', undefined, [409]);
    assert.match(
      res.body.error,
      new RegExp(`operation ${siteBackup.operationId} \\(BackupSite, run ${siteBackup.runId}\\)`),
    );
    assert.equal(res.body.running.runId, siteBackup.runId);
    assert.ok(await h.store.get('site', 'a.example.com'));
  });

  void test('case 8: an operation request whose body is not JSON is refused with 415', async () => {
    for (const type of ['text/plain', 'application/x-www-form-urlencoded', 'multipart/form-data; boundary=x']) {
      const res = await h.request('POST', '/v1/servers/web2/verify', undefined, {
        raw: '{}',
        headers: { 'content-type': type },
      });
      assert.equal(res.status, 415, type);
      assert.match(res.body.error, /must be JSON/);
    }
    const deploy = await h.request('POST', '/v1/platforms/wp/deploy', undefined, {
      raw: '{"transfer":{"mode":"rsync"}}',
      headers: { 'content-type': 'text/plain' },
    });
    assert.equal(deploy.status, 415);
  });

  void test('case 9: ssh.keyPath outside the key directories, or leading out of them, is refused', async () => {
    const rule = /must be a private key file inside a key directory/;
    for (const keyPath of [h.settings.tokenFile, h.settings.secretFile, '/etc/shadow', '/tmp/id_ed25519']) {
      await refusedField('POST', '/v1/servers', setPath(validServer, 'ssh.keyPath', keyPath), 'ssh.keyPath', rule);
      await refusedField(
        'PUT',
        '/v1/servers/web3',
        setPath({ ...validServer, name: 'web3' }, 'ssh.keyPath', keyPath),
        'ssh.keyPath',
        rule,
      );
    }
    // A link inside a key directory that points at the API token is refused too.
    const keys = join(h.dataDir, 'ssh-keys');
    mkdirSync(keys, { recursive: true });
    symlinkSync(h.settings.tokenFile, join(keys, 'id_token'));
    await refusedField(
      'POST',
      '/v1/servers',
      setPath(validServer, 'ssh.keyPath', join(keys, 'id_token')),
      'ssh.keyPath',
      /link that leads out/,
    );
  });

  void test('case 10: problems in URL path and query parameters name the parameter', async () => {
    const cases: [string, string][] = [
      ['/v1/operations/site/a.example.com?runId=nothex!', 'runId (query)'],
      ['/v1/operations/Site/x', 'operationId (path)'],
      ['/v1/schedules/resync/cluster/BAD', 'scheduleId (path)'],
      ['/v1/servers/BAD', 'name (path)'],
      ['/v1/sites/UPPER.example.com', 'domain (path)'],
      ['/v1/operations?limit=0', 'limit (query)'],
      ['/v1/operations?resource=nope', 'resource (query)'],
    ];
    for (const [path, field] of cases) {
      const res = await refused('GET', path, undefined, [400]);
      assert.deepEqual(
        res.body.fields.map((f: { field: string }) => f.field),
        [field],
        path,
      );
    }
    const forget = await refused('DELETE', '/v1/sites/a.example.com?forget=yes', undefined, [400]);
    assert.equal(forget.body.fields[0].field, 'forget (query)');
  });

  void test('case 11: an unsupported method answers 405 with an Allow header', async () => {
    const cases: [string, string, string][] = [
      ['PATCH', '/v1/servers/web1', 'DELETE, GET, HEAD, PUT'],
      ['DELETE', '/v1/servers', 'GET, HEAD, POST'],
      ['GET', '/v1/servers/web1/verify', 'POST'],
      ['PUT', '/v1/operations', 'GET, HEAD'],
    ];
    for (const [method, path, allow] of cases) {
      const res = await refused(method, path, undefined, [405]);
      assert.equal(res.headers.get('allow'), allow, `${method} ${path}`);
      assert.match(res.body.error, new RegExp(`${method} is not allowed`));
    }
    await refused('GET', '/v1/nothing-here', undefined, [404]);
  });

  void test("case 12: an invalid gzip body is refused in sitefleet's words", async () => {
    const res = await fetch(`${h.url}/v1/servers`, {
      method: 'POST',
      headers: { authorization: `Bearer ${h.token}`, 'content-type': 'application/json', 'content-encoding': 'gzip' },
      body: 'this is not gzip',
    });
    const body = (await res.json()) as { error: string };
    assert.equal(res.status, 400);
    assert.match(body.error, /request body is not valid gzip data/);
    assert.doesNotMatch(body.error, /incorrect header check/);
    // A valid gzip body is read (and then judged on its content: a duplicate key here).
    const ok = await fetch(`${h.url}/v1/servers`, {
      method: 'POST',
      headers: { authorization: `Bearer ${h.token}`, 'content-type': 'application/json', 'content-encoding': 'gzip' },
      body: gzipSync('{"name":"a","name":"b"}'),
    });
    assert.equal(ok.status, 400);
    assert.equal(((await ok.json()) as { fields: { field: string }[] }).fields[0]?.field, 'name');
  });

  void test('after all refused requests, the inventory is unchanged and no workflow has started', async () => {
    assert.deepEqual(await h.store.dump(), inventoryBefore);
    assert.deepEqual(await h.workflowIds(), workflowsBefore);
    assert.deepEqual((await h.request('GET', '/v1/schedules')).body, schedulesBefore);
  });

  void test('a git ref containing ".." is refused', async () => {
    for (const ref of ['../', '../../etc/passwd']) {
      await refused('POST', '/v1/platforms', setPath(validGitPlatform, 'source.ref', ref), [400]);
    }
  });

  void test("case 13: progressError is a plain sentence, without Temporal's internal query names", async () => {
    // A workflow that registers no progress query, on a task queue a worker serves.
    const { Worker } = await import('@temporalio/worker');
    const taskQueue = 'bad-input-no-progress';
    const worker = await Worker.create({
      connection: h.env.nativeConnection,
      namespace: h.settings.namespace,
      taskQueue,
      workflowsPath: require.resolve('./stub-workflows'),
    });
    const running = worker.run();
    try {
      const id = 'verify/server/no-progress';
      await h.env.client.workflow.start('NoProgress', { taskQueue, workflowId: id });
      const res = await h.request('GET', `/v1/operations/${id}`);
      assert.equal(res.status, 200);
      assert.match(res.body.progressError, /^no progress yet: this operation's workflow does not report progress/);
      assert.doesNotMatch(res.body.progressError, /__|Registered queries|handler/);
      await h.env.client.workflow.getHandle(id).terminate('test over');
    } finally {
      worker.shutdown();
      await running;
    }
  });
});
