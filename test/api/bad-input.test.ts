import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
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
const validCluster = { name: 'newcl', members: ['web1'], files: 'none', loadBalancer: 'lb1' };
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

  before(async () => {
    h = await startHarness();
    for (const name of ['web1', 'web2', 'web3']) await h.store.create('server', server(name));
    await h.store.create('server', server('db1', { http: undefined, db: { type: 'mariadb' } }));
    await h.store.create('server', server('lb1', { http: undefined, lb: { type: 'haproxy' } }));
    await h.store.create('server', server('nfs1', { http: undefined, nfs: { flavour: 'ganesha' } }));
    await h.store.create('pack', { name: 'pk', master: 'web1', share: { server: 'nfs1', clients: '10.0.0.0/24' } });
    await h.store.create('cluster', { name: 'cl', members: ['web1', 'web2'] });
    await h.store.create('platform', { ...validPathPlatform, name: 'wp', profile: 'wordpress' });
    await h.store.create('platform', { ...validPathPlatform, name: 'wp2', profile: 'wordpress' });
    await h.store.create('site', { domain: 'a.example.com', platform: 'wp', dbServer: 'db1' });
    // An operation and a schedule exist too, so that "unchanged" covers them.
    assert.equal((await h.request('POST', '/v1/servers/web1/verify')).status, 202);
    assert.equal((await h.request('POST', '/v1/schedules', validSchedule)).status, 201);
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
    // JSON sent as text/plain is not parsed: the body is missing.
    const res = await h.request('POST', '/v1/servers', undefined, {
      raw: JSON.stringify(validServer),
      headers: { 'content-type': 'text/plain' },
    });
    assert.equal(res.status, 400);
    assert.deepEqual(res.body.fields, [
      { field: '(body)', rule: 'Invalid input: expected object, received undefined' },
    ]);
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
});
