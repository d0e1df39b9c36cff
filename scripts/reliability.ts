/**
 * The long reliability cases (issue 8), kept out of `npm test`: `tsx scripts/reliability.ts [CASE...]`
 * (`npm run test:reliability`). Each case brings up its own test bed, Temporal dev server and sitefleet worker (in a
 * child process, as test/reliability does), acts, checks the final state of every node and of the database server,
 * and tears everything down. Prints a table of results and timings; exits 1 when any case fails.
 *
 *   load         SITES WordPress sites installed on a MEMBERS-member cluster, CONCURRENCY at a time (default: all
 *                at once); then every node, the database server and a VerifyClusterNodes of every site are checked
 *   quick-crash  the worker is SIGKILLed during a `quick` activity (the share mount of SetupPackShare): the new
 *                worker gets it after its 2-minute start-to-close timeout; one export, one fstab line, one mount
 *   long-cut     a member's link is cut for 45 s in the middle of an rsync, longer than ssh's keepalive (30 s):
 *                the transfer fails, is retried, and completes once the link is back
 *
 * The short cases are the test files under test/reliability (run by `npm test`); docs/reliability.md has both.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { Command, InvalidArgumentError } from 'commander';
import { siteDatabaseName } from '../activities/database';
import type { Platform, Server, Site } from '../domain/model';
import { workflowIds, type WebGroup } from '../domain/operations';
import { assertBedSupported } from '../testbed';
import { clusterGroup } from '../test/support/fleet';
import {
  activityRuns,
  type CrashableFleet,
  manifestDiff,
  platformManifest,
  retried,
  sleep,
  sourceManifest,
  startCrashableFleet,
  waitFor,
  waitForPending,
} from '../test/support/reliability';
import type { PackShareResult } from '../workflows/pack-share';
import type { VerifyReport } from '../workflows/verify';

const run = promisify(execFile);
const SOURCE = '/usr/share/wordpress';
const CASES = ['load', 'quick-crash', 'long-cut'] as const;
type CaseName = (typeof CASES)[number];

interface Options {
  sites: number;
  members: number;
  concurrency: number;
}

interface Outcome {
  ok: boolean;
  seconds: number;
  /** One line per measured fact, for the table. */
  facts: string[];
}

const wordpress = (target: Platform['target']): Platform => ({
  name: 'wp',
  target,
  source: { type: 'path', path: SOURCE },
  profile: 'wordpress',
});

const wordpressSite = (domain: string, dbServer: string): Site => ({
  domain,
  aliases: [],
  platform: 'wp',
  dbServer,
  https: false,
  status: 'enabled',
});

async function runWorkflow<T>(fleet: CrashableFleet, type: string, id: string, input: unknown): Promise<T> {
  return (await (await fleet.start(type, id, input)).result()) as T;
}

const seconds = (ms: number): string => `${(ms / 1000).toFixed(1)} s`;

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)] ?? NaN;
}

/** Runs `fn` over `items`, at most `limit` at once; every item settles. */
async function settleWindow<I, T>(
  items: I[],
  limit: number,
  fn: (item: I) => Promise<T>,
): Promise<PromiseSettledResult<T>[]> {
  const results: PromiseSettledResult<T>[] = new Array(items.length);
  let next = 0;
  const lane = async (): Promise<void> => {
    while (next < items.length) {
      const i = next++;
      results[i] = await fn(items[i] as I).then(
        (value) => ({ status: 'fulfilled', value }) as const,
        (reason: unknown) => ({ status: 'rejected', reason }) as const,
      );
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(limit, items.length)) }, lane));
  return results;
}

// ---------------------------------------------------------------- load

async function loadCase(opts: Options): Promise<Outcome> {
  const members = Array.from({ length: opts.members }, (_, i) => `h${i + 1}`);
  const dbHost = `h${opts.members + 1}`;
  const fleet = await startCrashableFleet({
    hosts: [...members.map(() => ({ roles: ['web-nginx' as const] })), { roles: ['db' as const] }],
  });
  const facts: string[] = [];
  try {
    const group = clusterGroup(
      'c1',
      members.map((n) => fleet.server(n)),
    );
    const platform = wordpress({ kind: 'cluster', name: 'c1' });
    let t0 = Date.now();
    await runWorkflow(fleet, 'CreatePlatformOnCluster', workflowIds.platform('wp'), { platform, group });
    facts.push(`platform on ${opts.members} members: ${seconds(Date.now() - t0)}`);

    const domains = Array.from({ length: opts.sites }, (_, i) => `load${String(i + 1).padStart(3, '0')}.example.com`);
    const latencies: number[] = [];
    t0 = Date.now();
    const settled = await settleWindow(domains, opts.concurrency, async (domain) => {
      const started = Date.now();
      await runWorkflow(fleet, 'InstallSiteOnCluster', workflowIds.site(domain), {
        site: wordpressSite(domain, dbHost),
        platform,
        group,
        dbServer: fleet.server(dbHost),
      });
      latencies.push(Date.now() - started);
    });
    const installMs = Date.now() - t0;
    const failures = settled.flatMap((s, i) =>
      s.status === 'rejected' ? [`${domains[i]}: ${String((s.reason as Error).cause ?? s.reason)}`] : [],
    );
    latencies.sort((a, b) => a - b);
    facts.push(
      `${opts.sites} installs, ${opts.concurrency} at a time: ${seconds(installMs)} ` +
        `(${((opts.sites / installMs) * 60_000).toFixed(1)} sites/min); per install median ` +
        `${seconds(percentile(latencies, 50))}, p95 ${seconds(percentile(latencies, 95))}, max ${seconds(latencies.at(-1) ?? NaN)}`,
    );
    facts.push(`failed installs: ${failures.length}${failures.length ? ` — ${failures.slice(0, 5).join(' | ')}` : ''}`);
    assert.deepEqual(failures, [], 'no install failed');

    // Every node: one vhost and one directory per site, no temp file.
    for (const host of members) {
      const listing = await fleet.bed.exec(host, [
        'sh',
        '-c',
        'ls -A "$1"; echo --; ls -A "$2"',
        'ls',
        `/var/aegir/config/server_${host}/nginx/vhost.d`,
        '/var/aegir/platforms/wp/sites',
      ]);
      const [vhosts = '', dirs = ''] = listing.stdout.split('--\n');
      assert.deepEqual(vhosts.split('\n').filter(Boolean).sort(), domains, `${host}: one vhost per site, nothing else`);
      assert.deepEqual(dirs.split('\n').filter(Boolean).sort(), domains, `${host}: one directory per site`);
    }
    // The database server: one database per site, one account per member, one WordPress admin.
    const sql = async (query: string) =>
      (await fleet.bed.exec(dbHost, ['mysql', '--batch', '--skip-column-names', '-e', query])).stdout;
    const names = domains.map(siteDatabaseName);
    const schemata = (await sql("SELECT SCHEMA_NAME FROM information_schema.SCHEMATA WHERE SCHEMA_NAME LIKE 'load%'"))
      .split('\n')
      .filter(Boolean)
      .sort();
    assert.deepEqual(schemata, [...names].sort(), 'one database per site');
    const accounts = await sql("SELECT User, COUNT(*) FROM mysql.user WHERE User LIKE 'load%' GROUP BY User");
    assert.deepEqual(
      accounts.split('\n').filter(Boolean).sort(),
      names.map((n) => `${n}\t${opts.members}`).sort(),
      'one account per member for each site',
    );
    const admins = await sql(names.map((n) => `SELECT COUNT(*) FROM \`${n}\`.wp_users;`).join(' '));
    assert.deepEqual(
      admins.split('\n').filter(Boolean),
      names.map(() => '1'),
      'one WordPress admin per site',
    );

    t0 = Date.now();
    const report = await runWorkflow<VerifyReport>(fleet, 'VerifyClusterNodes', workflowIds.verify('cluster', 'c1'), {
      group,
      platforms: [platform],
      sites: domains.map((d) => wordpressSite(d, dbHost)),
      dbServers: [fleet.server(dbHost)],
    });
    const failing = report.nodes.flatMap((n) => n.checks.filter((c) => !c.ok).map((c) => `${n.server}:${c.name}`));
    facts.push(
      `VerifyClusterNodes of ${opts.sites} sites on ${opts.members} members: ${seconds(Date.now() - t0)}, ` +
        `${failing.length} failing check(s)`,
    );
    assert.deepEqual(failing, [], 'every check of every node passes');
    return { ok: true, seconds: 0, facts };
  } finally {
    await fleet.close();
  }
}

// ---------------------------------------------------------------- quick-crash

async function quickCrashCase(): Promise<Outcome> {
  const fleet = await startCrashableFleet({
    hosts: [{ roles: ['web-nginx', 'nfs'] }, { roles: ['web-nginx'] }, { roles: ['web-nginx'] }],
  });
  const facts: string[] = [];
  const slaves = ['h2', 'h3'];
  try {
    const members = ['h1', 'h2', 'h3'].map((n) => fleet.server(n));
    const master = members[0] as Server;
    const pack: WebGroup = {
      kind: 'pack',
      name: 'p1',
      members,
      codeReceivers: [master.name],
      share: {
        server: master,
        exportPath: '/var/aegir/platforms',
        clients: fleet.bed.facts.subnet,
        clientFlavour: 'sshfs',
      },
    };
    const handle = await fleet.start('SetupPackShare', workflowIds.pack('p1'), { pack });
    const atKill = await waitForPending(handle, (pending) =>
      pending.some((p) => p.type === 'ensureShareMount' && p.state === 'started'),
    );
    const killedAt = Date.now();
    await fleet.worker().crash();
    await fleet.startWorker();
    const result = (await handle.result()) as PackShareResult;
    facts.push(
      `killed during ${atKill.map((p) => p.type).join(', ')}; completed ${seconds(Date.now() - killedAt)} after the kill`,
    );
    const again = retried(await activityRuns(handle));
    facts.push(`run again: ${again.join('; ')}`);
    assert.ok(again.length > 0 && again.every((r) => /start-to-close timeout$/.test(r)), again.join('; '));
    assert.deepEqual(result.mountedOn.sort(), slaves);
    assert.deepEqual(result.nfsReadable.sort(), slaves);

    const ganesha = await fleet.bed.readFile('h1', '/etc/ganesha/ganesha.conf');
    assert.equal(ganesha.match(/^EXPORT\s*\{/gm)?.length, 1, 'one export');
    const home = (await fleet.bed.exec('h1', ['getent', 'passwd', 'aegir'])).stdout.split(':')[5];
    const authorized = await fleet.bed.readFile('h1', `${home}/.ssh/authorized_keys`);
    for (const slave of slaves) {
      const fstab = await fleet.bed.readFile(slave, '/etc/fstab');
      assert.equal(fstab.split('\n').filter((l) => l.includes('fuse.sshfs')).length, 1, `${slave}: one fstab line`);
      const mounts = await fleet.bed.exec(slave, [
        'findmnt',
        '-n',
        '-o',
        'FSTYPE',
        '--mountpoint',
        '/var/aegir/platforms',
      ]);
      assert.equal(mounts.stdout.trim(), 'fuse.sshfs', `${slave}: mounted once`);
      const known = await fleet.bed.readFile(slave, '/root/.ssh/sitefleet-known_hosts');
      assert.equal(known.split('\n').filter((l) => /^[^#\s]/.test(l)).length, 1, `${slave}: one pinned host key`);
      assert.equal(
        authorized.split('\n').filter((l) => l.includes(`sitefleet-pack-p1@${slave}`)).length,
        1,
        `${slave}: one authorised key on the share server`,
      );
    }
    facts.push('one export block, one fstab line, one mount, one key per slave');
    return { ok: true, seconds: 0, facts };
  } finally {
    await fleet.close();
  }
}

// ---------------------------------------------------------------- long-cut

async function longCutCase(): Promise<Outcome> {
  const members = ['h1', 'h2', 'h3'];
  const fleet = await startCrashableFleet({ hosts: members.map(() => ({ roles: ['web-nginx' as const] })) });
  const facts: string[] = [];
  const cutMs = 45_000;
  const veth = fleet.bed.host('h2').veth;
  try {
    const group = clusterGroup(
      'c1',
      members.map((n) => fleet.server(n)),
    );
    const platform = wordpress({ kind: 'cluster', name: 'c1' });
    // 40 Mbit/s toward h2, so that the cut lands while files flow (see test/reliability/link-cut.test.ts).
    await run('tc', ['qdisc', 'add', 'dev', veth, 'root', ...'tbf rate 40mbit burst 256kb latency 50ms'.split(' ')]);
    const handle = await fleet.start('CreatePlatformOnCluster', workflowIds.platform('wp'), { platform, group });
    const filesOnH2 = async () =>
      Number(
        (await fleet.bed.exec('h2', ['sh', '-c', 'find /var/aegir/platforms/wp -type f 2>/dev/null | wc -l'])).stdout,
      );
    await waitFor(async () => (await filesOnH2()) >= 200);
    const cutAt = Date.now();
    await fleet.bed.cutLink('h2');
    const filesAtCut = await filesOnH2();
    try {
      await sleep(cutMs);
    } finally {
      await fleet.bed.restoreLink('h2');
      await run('tc', ['qdisc', 'del', 'dev', veth, 'root']);
    }
    await handle.result();
    facts.push(
      `cut with ${filesAtCut} files on h2 for ${seconds(cutMs)}; completed ${seconds(Date.now() - cutAt)} after the cut`,
    );
    const again = retried(await activityRuns(handle));
    facts.push(`run again: ${again.join('; ') || 'none'}`);
    assert.ok(
      again.some((r) => r.startsWith('syncPlatform@h2')),
      'the rsync to h2 was retried',
    );
    const expected = await sourceManifest(SOURCE);
    for (const host of members) {
      const diff = manifestDiff(expected, await platformManifest(fleet.bed, host, '/var/aegir/platforms/wp'));
      assert.deepEqual(diff, { missing: [], extra: [] }, `${host} has exactly the source tree`);
    }
    facts.push('every member has exactly the source tree');
    return { ok: true, seconds: 0, facts };
  } finally {
    await fleet.close();
  }
}

// ---------------------------------------------------------------- main

function positiveInt(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1) throw new InvalidArgumentError('must be a positive integer');
  return n;
}

async function main(): Promise<number> {
  const program = new Command()
    .name('reliability')
    .description('the long reliability cases of sitefleet (see docs/reliability.md)')
    .argument('[cases...]', `cases to run: ${CASES.join(', ')} (default: all)`)
    .option('--sites <n>', 'load: sites to install', positiveInt, 100)
    .option('--members <n>', 'load: cluster members', positiveInt, 4)
    .option('--concurrency <n>', 'load: installs running at once (default: all sites)', positiveInt)
    .parse();
  const picked = program.args.length > 0 ? program.args : [...CASES];
  const unknown = picked.filter((c) => !(CASES as readonly string[]).includes(c));
  if (unknown.length > 0) program.error(`unknown case(s): ${unknown.join(', ')}; cases are ${CASES.join(', ')}`);
  const raw = program.opts<{ sites: number; members: number; concurrency?: number }>();
  const opts: Options = { sites: raw.sites, members: raw.members, concurrency: raw.concurrency ?? raw.sites };
  assertBedSupported();

  const cases: Record<CaseName, () => Promise<Outcome>> = {
    load: () => loadCase(opts),
    'quick-crash': quickCrashCase,
    'long-cut': longCutCase,
  };
  const rows: string[] = [];
  let failed = 0;
  for (const name of picked as CaseName[]) {
    console.log(`\n=== ${name}`);
    const started = Date.now();
    let outcome: Outcome;
    try {
      outcome = await cases[name]();
    } catch (error) {
      failed++;
      outcome = { ok: false, seconds: 0, facts: [error instanceof Error ? error.message : String(error)] };
    }
    outcome.seconds = (Date.now() - started) / 1000;
    for (const fact of outcome.facts) console.log(`  ${fact}`);
    rows.push(
      `| ${name} | ${outcome.ok ? 'survived' : 'FAILED'} | ${outcome.seconds.toFixed(0)} s | ${outcome.facts.join('; ')} |`,
    );
  }
  console.log(['', '| case | result | time | measured |', '|---|---|---|---|', ...rows].join('\n'));
  return failed;
}

main().then(
  (failed) => process.exit(failed > 0 ? 1 : 0),
  (error: unknown) => {
    console.error(error);
    process.exit(1);
  },
);
