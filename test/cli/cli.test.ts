import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { stringify } from 'yaml';
import { runCli } from '../../cli/program';
import { FAKE_KEY, startHarness, startStubWorker, type Harness } from '../api/harness';

interface Run {
  code: number;
  out: string;
  err: string;
}

void describe('sitefleet CLI', () => {
  let h: Harness;
  let worker: { stop(): Promise<void> };

  before(async () => {
    h = await startHarness();
    worker = await startStubWorker(h);
  });
  after(async () => {
    await worker?.stop();
    await h?.close();
  });

  /** Runs the CLI in this process against the test API; `isTTY` false unless asked. */
  async function cli(
    args: string[],
    opts: { env?: NodeJS.ProcessEnv; isTTY?: boolean; answer?: boolean } = {},
  ): Promise<Run> {
    const out: string[] = [];
    const err: string[] = [];
    const code = await runCli(args, {
      out: (l) => out.push(l),
      err: (l) => err.push(l),
      env: opts.env ?? { SITEFLEET_API_URL: h.url, SITEFLEET_TOKEN: h.token, SITEFLEET_DATA_DIR: h.dataDir },
      isTTY: opts.isTTY ?? false,
      confirm: async () => opts.answer ?? false,
    });
    return { code, out: out.join('\n'), err: err.join('\n') };
  }
  const ok = async (args: string[]) => {
    const r = await cli(args);
    assert.equal(r.code, 0, `sitefleet ${args.join(' ')}\n${r.out}\n${r.err}`);
    return r;
  };
  const fast = ['--poll-interval', '100'];

  /** Runs cli/main.ts as a separate process, the way an operator does. */
  function spawnCli(args: string[], env: NodeJS.ProcessEnv): Promise<Run> {
    return new Promise((resolve) => {
      const child = spawn(process.execPath, ['--import', 'tsx', join(__dirname, '../../cli/main.ts'), ...args], {
        env: { PATH: process.env.PATH, HOME: process.env.HOME, ...env },
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      let out = '';
      let err = '';
      child.stdout.on('data', (d: Buffer) => (out += d.toString()));
      child.stderr.on('data', (d: Buffer) => (err += d.toString()));
      child.on('close', (code) => resolve({ code: code ?? -1, out, err }));
    });
  }

  void test('manages servers, packs, clusters, platforms and sites', async () => {
    await ok(['server', 'add', 'web1', '--host', '10.0.1.1', '--host-key', FAKE_KEY, '--http', 'nginx']);
    await ok([
      'server',
      'add',
      'web2',
      '--host',
      '10.0.1.2',
      '--host-key',
      FAKE_KEY,
      '--http',
      'apache',
      '--http-port',
      '8080',
      '--ssh-port',
      '2222',
      '--ssh-user',
      'deploy',
    ]);
    await ok(['server', 'add', 'db1', '--host', '10.0.1.9', '--host-key', FAKE_KEY, '--db', 'mariadb']);
    await ok(['server', 'add', 'nfs1', '--host', '10.0.1.8', '--host-key', FAKE_KEY, '--nfs', 'ganesha']);
    const web2 = await h.store.get('server', 'web2');
    assert.deepEqual(web2?.ssh, { user: 'deploy', port: 2222, hostKey: FAKE_KEY });
    assert.equal(web2?.http?.type, 'apache');
    assert.equal(web2?.http?.port, 8080);

    const list = await ok(['server', 'list']);
    assert.match(list.out, /^NAME\s+HOST\s+SSH\s+SERVICES\s+HOST KEY/m);
    assert.match(list.out, /^web2\s+10\.0\.1\.2\s+deploy@:2222\s+http:apache/m);
    const shown = await ok(['--json', 'server', 'show', 'web1']);
    assert.equal(JSON.parse(shown.out).host, '10.0.1.1');
    assert.match((await ok(['server', 'show', 'web1'])).out, /^host: 10\.0\.1\.1$/m);

    await ok([
      'pack',
      'add',
      'pk',
      '--master',
      'web1',
      '--slaves',
      'web2',
      '--share-server',
      'nfs1',
      '--clients',
      '10.0.1.0/24',
    ]);
    assert.deepEqual((await h.store.get('pack', 'pk'))?.slaves, ['web2']);
    assert.match((await ok(['pack', 'list'])).out, /^pk\s+web1\s+web2\s+nfs1 → 10\.0\.1\.0\/24 \(kernel\)/m);
    await ok(['cluster', 'add', 'cl', '--members', 'web1,web2', '--files', 'pin-to-one']);
    assert.deepEqual((await h.store.get('cluster', 'cl'))?.members, ['web1', 'web2']);
    await ok([
      'platform',
      'add',
      'wp',
      '--target',
      'cluster:cl',
      '--git',
      'https://example.com/wp.git',
      '--ref',
      'v6',
      '--profile',
      'wordpress',
    ]);
    assert.deepEqual((await h.store.get('platform', 'wp'))?.source, {
      type: 'git',
      url: 'https://example.com/wp.git',
      ref: 'v6',
    });
    await ok([
      'platform',
      'add',
      'wp2',
      '--target',
      'cluster:cl',
      '--tarball',
      'https://example.com/wp.tgz',
      '--profile',
      'wordpress',
    ]);
    await ok(['platform', 'add', 'onpack', '--target', 'pack:pk', '--path', '/srv/code', '--profile', 'php']);
    await ok([
      'site',
      'add',
      'a.example.com',
      '--platform',
      'wp',
      '--db-server',
      'db1',
      '--alias',
      'www.a.example.com',
      '--https',
    ]);
    assert.deepEqual((await h.store.get('site', 'a.example.com'))?.aliases, ['www.a.example.com']);
    await ok(['site', 'add', 'fail.example.com', '--platform', 'wp', '--db-server', 'db1']);
    await ok(['site', 'add', 'p.example.com', '--platform', 'onpack']);
    assert.match(
      (await ok(['site', 'list'])).out,
      /^a\.example\.com\s+wp\s+db1\s+https\s+enabled\s+www\.a\.example\.com/m,
    );
    assert.match(
      (await ok(['platform', 'list'])).out,
      /^wp\s+cluster:cl\s+wordpress\s+git:https:\/\/example\.com\/wp\.git#v6/m,
    );
    assert.match((await ok(['cluster', 'list'])).out, /^cl\s+web1,web2\s+pin-to-one\s+-/m);

    const file = join(h.dataDir, 'site.yaml');
    writeFileSync(file, stringify({ domain: 'file.example.com', platform: 'onpack' }));
    await ok(['site', 'add', '--file', file]);
    assert.ok(await h.store.get('site', 'file.example.com'));
    await ok(['site', 'remove', 'file.example.com', '--forget']);
    assert.equal(await h.store.get('site', 'file.example.com'), undefined);
  });

  void test('a refused request exits 1 and prints the API message with its field problems', async () => {
    const before = await h.store.dump();
    const bad = await cli(['server', 'add', 'Bad;Name', '--host', '$(id)', '--host-key', FAKE_KEY]);
    assert.equal(bad.code, 1);
    assert.match(bad.err, /^error: invalid request$/m);
    assert.match(bad.err, /^ {2}name: must be 1-63 characters/m);
    assert.match(bad.err, /^ {2}host: must be an IPv4 address or a lower-case DNS name/m);
    const inUse = await cli(['server', 'remove', 'web1']);
    assert.equal(inUse.code, 1);
    assert.match(inUse.err, /server "web1" is still used by pack "pk" \(master\)/);
    const ghost = await cli(['site', 'add', 'g.example.com', '--platform', 'ghost']);
    assert.match(ghost.err, /unknown platform "ghost"/);
    const usage = await cli(['server', 'add', 'x']);
    assert.equal(usage.code, 2);
    assert.match(usage.err, /needs NAME and --host/);
    const unknown = await cli(['frobnicate']);
    assert.equal(unknown.code, 2);
    assert.match(unknown.err, /unknown command 'frobnicate'/);
    const wrongToken = await cli(['server', 'list'], { env: { SITEFLEET_API_URL: h.url, SITEFLEET_TOKEN: 'wrong' } });
    assert.equal(wrongToken.code, 1);
    assert.match(wrongToken.err, /missing or wrong API token/);
    assert.deepEqual(await h.store.dump(), before);
  });

  void test('runs an operation, shows per-node progress, and exits 0 when it completes', async () => {
    const r = await ok(['install', 'a.example.com', ...fast]);
    assert.match(r.out, /^started InstallSiteOnCluster site\/a\.example\.com \(run [0-9a-f-]+\)$/m);
    assert.match(r.out, /web ui: http:\/\/127\.0\.0\.1:8233\/namespaces\/default\/workflows\/site%2Fa\.example\.com\//);
    assert.match(r.out, /^phase: prepare$/m);
    assert.match(r.out, /^ {2}web1\s+running\s+prepare$/m);
    assert.match(r.out, /^ {2}web2\s+done\s+done$/m);
    assert.match(r.out, /^InstallSiteOnCluster site\/a\.example\.com: COMPLETED/m);
    assert.match(r.out, /result: \{"operation":"InstallSiteOnCluster","nodes":\["web1","web2"\]\}/);
  });

  void test('exits 1 when the operation fails, with the failing node and the reason', async () => {
    const r = await cli(['install', 'fail.example.com', ...fast]);
    assert.equal(r.code, 1);
    assert.match(r.out, /^ {2}web1\s+failed\s+apply — stub failure$/m);
    assert.match(r.out, /^InstallSiteOnCluster site\/fail\.example\.com: FAILED/m);
    assert.match(r.out, /failure: .*stub failure on web1/);
  });

  void test('starts every operation verb with the workflow its target needs', async () => {
    await ok(['server', 'add', 'web3', '--host', '10.0.1.3', '--host-key', FAKE_KEY, '--http', 'nginx']);
    const cases: [string[], string, string][] = [
      [['deploy', 'wp'], 'platform/wp', 'CreatePlatformOnCluster'],
      [['platform', 'deploy', 'onpack'], 'platform/onpack', 'CreatePlatformOnPack'],
      [['install', 'p.example.com'], 'site/p.example.com', 'InstallSiteOnPack'],
      [['verify', 'server', 'web1'], 'server/web1', 'VerifyServer'],
      [['server', 'verify', 'web2'], 'server/web2', 'VerifyServer'],
      [['verify', 'pack', 'pk'], 'verify/pack/pk', 'VerifyClusterNodes'],
      [['verify', 'cluster', 'cl'], 'verify/cluster/cl', 'VerifyClusterNodes'],
      [['resync', 'pack', 'pk'], 'resync/pack/pk', 'ResyncCluster'],
      [['cluster', 'resync', 'cl'], 'resync/cluster/cl', 'ResyncCluster'],
      [['setup-share', 'pk'], 'pack/pk', 'SetupPackShare'],
      [['enable', 'a.example.com'], 'site/a.example.com', 'EnableSite'],
      [['disable', 'a.example.com'], 'site/a.example.com', 'DisableSite'],
      [['backup', 'a.example.com'], 'site/a.example.com', 'BackupSite'],
      [['restore', 'a.example.com', '--backup', 'a.example.com-1.tar.gz'], 'site/a.example.com', 'RestoreSite'],
      [['migrate', 'a.example.com', '--to', 'wp2'], 'site/a.example.com', 'MigrateSite'],
      [['cluster', 'add-member', 'cl', 'web3'], 'cluster/cl', 'AddClusterMember'],
      [['cluster', 'remove-member', 'cl', 'web3'], 'cluster/cl', 'RemoveClusterMember'],
    ];
    for (const [args, id, type] of cases) {
      const r = await cli([...args, ...fast]);
      assert.match(
        r.out,
        new RegExp(`^started ${type} ${id.replace(/\./g, '\\.')} `, 'm'),
        `${args.join(' ')}\n${r.out}\n${r.err}`,
      );
      assert.match(r.out, new RegExp(`^${type} ${id.replace(/\./g, '\\.')}: COMPLETED`, 'm'));
      assert.equal(r.code, 0);
    }
    assert.deepEqual((await h.store.get('cluster', 'cl'))?.members, ['web1', 'web2']);
    assert.equal((await h.store.get('site', 'a.example.com'))?.platform, 'wp2');
    assert.equal((await h.store.get('site', 'a.example.com'))?.status, 'disabled');
  });

  void test('--no-wait returns once the operation has started; operation show, list, watch and cancel follow it', async () => {
    const started = await ok(['--json', 'verify', 'cluster', 'cl', '--no-wait']);
    const op = JSON.parse(started.out);
    assert.equal(op.operationId, 'verify/cluster/cl');
    const shown = JSON.parse((await ok(['--json', 'operation', 'show', 'verify/cluster/cl'])).out);
    assert.equal(shown.runId, op.runId);
    const busy = await cli(['verify', 'cluster', 'cl']);
    assert.equal(busy.code, 1);
    assert.match(busy.err, /cluster\/cl is busy: operation verify\/cluster\/cl \(VerifyClusterNodes, run /);
    const watched = await ok(['operation', 'watch', 'verify/cluster/cl', ...fast]);
    assert.match(watched.out, /VerifyClusterNodes verify\/cluster\/cl: COMPLETED/);
    assert.match(
      (await ok(['operation', 'list', '--resource', 'cluster/cl'])).out,
      /^verify\/cluster\/cl\s+VerifyClusterNodes\s+COMPLETED/m,
    );

    await ok(['resync', 'cluster', 'cl', '--no-wait']);
    const cancel = await ok(['operation', 'cancel', 'resync/cluster/cl']);
    assert.match(cancel.out, /cancellation of resync\/cluster\/cl requested/);
    const result = await cli(['operation', 'watch', 'resync/cluster/cl', ...fast]);
    assert.equal(result.code, 1);
    assert.match(result.out, /ResyncCluster resync\/cluster\/cl: CANCELLED/);
  });

  void test('deletes sites and platforms through their workflows, then forgets them', async () => {
    await ok(['site', 'remove', 'p.example.com', ...fast]);
    assert.equal(await h.store.get('site', 'p.example.com'), undefined);
    await ok(['delete', 'platform', 'onpack', ...fast]);
    assert.equal(await h.store.get('platform', 'onpack'), undefined);
    const refused = await cli(['delete', 'platform', 'wp2']);
    assert.equal(refused.code, 1);
    assert.match(refused.err, /still has 1 site\(s\): a\.example\.com/);
    await ok(['delete', 'site', 'fail.example.com', '--no-wait']);
  });

  void test('manages schedules', async () => {
    assert.match(
      (await ok(['schedule', 'add', 'resync', 'cluster', 'cl', '--every', '6h'])).out,
      /created schedule resync\/cluster\/cl every 6h/,
    );
    assert.match(
      (await ok(['schedule', 'add', 'resync', 'cluster', 'cl', '--every', '3h'])).out,
      /updated schedule resync\/cluster\/cl every 3h/,
    );
    await ok([
      'schedule',
      'add',
      'verify',
      'pack',
      'pk',
      '--every',
      '1d',
      '--paused',
      '--note',
      'until the share is ready',
    ]);
    assert.match((await ok(['schedule', 'list'])).out, /^resync\/cluster\/cl\s+3h\s+active/m);
    assert.match((await ok(['schedule', 'list'])).out, /^verify\/pack\/pk\s+1d\s+paused/m);
    await ok(['schedule', 'set', 'resync/cluster/cl', '--every', '45m']);
    await ok(['schedule', 'pause', 'resync/cluster/cl', '--note', 'maintenance']);
    let shown = JSON.parse((await ok(['--json', 'schedule', 'show', 'resync/cluster/cl'])).out);
    assert.deepEqual([shown.every, shown.paused, shown.note], ['45m', true, 'maintenance']);
    await ok(['schedule', 'unpause', 'resync/cluster/cl']);
    shown = JSON.parse((await ok(['--json', 'schedule', 'show', 'resync/cluster/cl'])).out);
    assert.equal(shown.paused, false);
    await ok(['schedule', 'remove', 'resync/cluster/cl']);
    await ok(['schedule', 'remove', 'verify/pack/pk']);
    assert.equal((await ok(['schedule', 'list'])).out, '(none)');
  });

  void test('apply prints the plan, requires --yes without a terminal, then writes the inventory and runs the operations', async () => {
    const file = join(h.dataDir, 'fleet.yaml');
    const description = {
      servers: [
        { name: 'web1', host: '10.0.1.1', ssh: { hostKey: FAKE_KEY }, http: { type: 'nginx' } },
        { name: 'web5', host: '10.0.1.5', ssh: { hostKey: FAKE_KEY }, http: { type: 'nginx' } },
        { name: 'web6', host: '10.0.1.6', ssh: { hostKey: FAKE_KEY }, http: { type: 'nginx' } },
      ],
      clusters: [{ name: 'c2', members: ['web5', 'web6'] }],
      platforms: [
        {
          name: 'static2',
          target: { kind: 'cluster', name: 'c2' },
          source: { type: 'tarball', url: 'https://example.com/s.tgz' },
          profile: 'static',
        },
      ],
      sites: [{ domain: 'static.example.com', platform: 'static2' }],
      schedules: [{ action: 'verify', target: { kind: 'cluster', name: 'c2' }, every: '1h' }],
    };
    writeFileSync(file, stringify(description));
    const before = await h.store.dump();

    const plan = await ok(['apply', file, '--plan']);
    assert.match(plan.out, /^ {2}= server web1 \(unchanged\)$/m);
    assert.match(plan.out, /^ {2}\+ server web5 \(create\)$/m);
    assert.match(plan.out, /^ {2}\+ cluster c2 \(create\)$/m);
    assert.match(plan.out, /^ {2}\+ site static\.example\.com \(create\)$/m);
    assert.match(plan.out, /^ {2}\+ schedule verify\/cluster\/c2 \(create\)$/m);
    assert.match(plan.out, /^ {2}1\. verify server web5$/m);
    // Steps are numbered in the order they run, without gaps.
    assert.match(plan.out, /^ {2}2\. deploy platform static2$/m);
    assert.match(plan.out, /^ {2}3\. install site static\.example\.com$/m);
    assert.doesNotMatch(plan.out, /verify server web1/);

    const noTty = await cli(['apply', file]);
    assert.equal(noTty.code, 2);
    assert.match(noTty.err, /no terminal to confirm the plan; rerun with --yes/);
    const declined = await cli(['apply', file], { isTTY: true, answer: false });
    assert.equal(declined.code, 0);
    assert.match(declined.out, /not applied/);
    assert.deepEqual(await h.store.dump(), before);

    const applied = await ok(['apply', file, '--yes', ...fast]);
    assert.match(applied.out, /^created server web5$/m);
    assert.match(applied.out, /^created schedule verify\/cluster\/c2$/m);
    assert.match(applied.out, /^\[server\/web6\] VerifyServer server\/web6: COMPLETED/m);
    assert.match(applied.out, /^\[platform\/static2\] CreatePlatformOnCluster platform\/static2: COMPLETED/m);
    assert.match(
      applied.out,
      /^\[site\/static\.example\.com\] InstallSiteOnCluster site\/static\.example\.com: COMPLETED/m,
    );
    assert.match(applied.out, /^applied$/m);
    assert.deepEqual((await h.store.get('cluster', 'c2'))?.members, ['web5', 'web6']);

    const again = await ok(['apply', file, '--yes']);
    assert.match(again.out, /nothing to change/);

    // A changed cluster is resynced; a failing operation stops the later phases and exits 1.
    description.clusters[0]!.members.push('web1');
    description.sites.push({ domain: 'fail2.example.com', platform: 'static2' });
    writeFileSync(file, stringify(description));
    const changed = await cli(['apply', file, '--yes', ...fast]);
    assert.match(changed.out, /^ {2}~ cluster c2 \(update\)$/m);
    assert.match(changed.out, /^ {6}members: \["web5","web6"\] → \["web5","web6","web1"\]$/m);
    assert.match(changed.out, /^ {2}1\. resync cluster c2$/m);
    assert.match(changed.out, /^ {2}2\. install site fail2\.example\.com$/m);
    assert.match(changed.out, /InstallSiteOnCluster site\/fail2\.example\.com: FAILED/);
    assert.equal(changed.code, 1);
    await ok(['schedule', 'remove', 'verify/cluster/c2']);
  });

  void test('apply refuses an invalid description, naming each problem, and changes nothing', async () => {
    const file = join(h.dataDir, 'bad.yaml');
    writeFileSync(
      file,
      stringify({
        servers: [{ name: 'ok1', host: '$(id)', ssh: {} }],
        sites: [{ domain: 'x', platform: 'p', extra: 1 }],
        unknown: [],
      }),
    );
    const before = await h.store.dump();
    const r = await cli(['apply', file, '--yes']);
    assert.equal(r.code, 1);
    assert.match(r.err, /is not a valid sitefleet description/);
    assert.match(r.err, /^ {2}servers\.0\.host: must be an IPv4 address/m);
    assert.match(r.err, /^ {2}sites\.0\.domain: must be a lower-case DNS name/m);
    assert.match(r.err, /^ {2}sites\.0: Unrecognized key: "extra"/m);
    assert.match(r.err, /^ {2}\(body\): Unrecognized key: "unknown"/m);
    writeFileSync(file, 'servers: [unclosed');
    const broken = await cli(['apply', file, '--yes']);
    assert.equal(broken.code, 1);
    assert.match(broken.err, /cannot read .*bad\.yaml/);
    assert.deepEqual(await h.store.dump(), before);
  });

  void test('as a separate process: reads the API URL and token from the environment or the token file, and sets the exit code', async () => {
    const viaEnv = await spawnCli(['server', 'list'], { SITEFLEET_API_URL: h.url, SITEFLEET_TOKEN: h.token });
    assert.equal(viaEnv.code, 0, viaEnv.err);
    assert.match(viaEnv.out, /^web1\s+10\.0\.1\.1/m);
    const viaFile = await spawnCli(['--api-url', h.url, 'site', 'show', 'a.example.com'], {
      SITEFLEET_DATA_DIR: h.dataDir,
    });
    assert.equal(viaFile.code, 0, viaFile.err);
    assert.match(viaFile.out, /^domain: a\.example\.com$/m);
    const failing = await spawnCli(['install', 'fail.example.com', '--poll-interval', '100'], {
      SITEFLEET_API_URL: h.url,
      SITEFLEET_TOKEN: h.token,
    });
    assert.equal(failing.code, 1);
    const noApi = await spawnCli(['server', 'list'], { SITEFLEET_API_URL: 'http://127.0.0.1:1', SITEFLEET_TOKEN: 'x' });
    assert.equal(noApi.code, 1);
    assert.match(noApi.err, /cannot reach the sitefleet API at http:\/\/127\.0\.0\.1:1/);
    const usage = await spawnCli(['verify'], {});
    assert.equal(usage.code, 2);
    const noToken = await spawnCli(['server', 'list'], {
      SITEFLEET_API_URL: h.url,
      SITEFLEET_DATA_DIR: join(h.dataDir, 'nowhere'),
    });
    assert.equal(noToken.code, 1);
    assert.match(noToken.err, /no API token: set SITEFLEET_TOKEN/);
  });
});
