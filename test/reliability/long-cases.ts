/**
 * The long reliability cases (issue 8), kept out of `npm test`: `tsx test/reliability/long-cases.ts [CASE...]`
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
 *   member-down-late  a member loses power after its vhost and site directory are in place (during the WordPress
 *                installer) and is back 40 s later: the install fails and is undone, and the member that was
 *                down must end as before too (test/reliability/member-faults.test.ts stops it earlier)
 *
 * The short cases are the test files under test/reliability (run by `npm test`); docs/reliability.md has both.
 */
import { settleBounded } from '../../common/settle';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { isGrpcServiceError, WorkflowExecutionAlreadyStartedError } from '@temporalio/client';
import { Command, InvalidArgumentError } from 'commander';
import { siteDatabaseName } from '../../activities/database';
import type { Platform, Server, Site } from '../../domain/model';
import { workflowIds, type WebGroup } from '../../domain/operations';
import { assertBedSupported } from '../../testbed';
import { clusterGroup } from '../support/fleet';
import {
  activityRuns,
  type CrashableFleet,
  groupSnapshot,
  manifestDiff,
  platformManifest,
  retried,
  siteOnNode,
  sleep,
  sourceManifest,
  startCrashableFleet,
  waitFor,
  waitForPending,
} from '../support/reliability';
import type { PackShareResult } from '../../workflows/pack-share';
import type { VerifyReport } from '../../workflows/verify';
import { messageOf } from '../../common/error-message';

const run = promisify(execFile);
const SOURCE = '/usr/share/wordpress';
const CASES = ['load', 'quick-crash', 'long-cut', 'member-down-late'] as const;
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

/** gRPC codes of a Temporal server too busy to answer in time: DEADLINE_EXCEEDED, RESOURCE_EXHAUSTED, UNAVAILABLE. */
const BUSY_SERVER_CODES = new Set([4, 8, 14]);

/** Whether `err` (or a cause of it) is a call the Temporal server did not answer in time, not a workflow outcome. */
function serverTooBusy(err: unknown): boolean {
  for (let e = err; e; e = (e as { cause?: unknown }).cause) {
    if (isGrpcServiceError(e) && BUSY_SERVER_CODES.has(e.code)) return true;
  }
  return false;
}

let busyServerRetries = 0;

/**
 * Starts a workflow and waits for its outcome. A call the dev server could not answer in time (it is the first thing
 * to choke on a busy 2-core machine) is asked again — a start that did go through is followed, not repeated —
 * so that what is reported is the workflow's own outcome.
 */
async function runWorkflow<T>(fleet: CrashableFleet, type: string, id: string, input: unknown): Promise<T> {
  for (let asked = 1; ; asked++) {
    try {
      await fleet.start(type, id, input);
      break;
    } catch (err) {
      // Our own earlier start went through after all.
      if (err instanceof WorkflowExecutionAlreadyStartedError && asked > 1) break;
      if (!serverTooBusy(err)) throw err;
      busyServerRetries++;
      await sleep(1_000);
    }
  }
  for (;;) {
    try {
      return (await fleet.client.workflow.getHandle(id).result()) as T;
    } catch (err) {
      if (!serverTooBusy(err)) throw err;
      busyServerRetries++;
      await sleep(1_000);
    }
  }
}

const seconds = (ms: number): string => `${(ms / 1000).toFixed(1)} s`;

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)] ?? NaN;
}

// ---------------------------------------------------------------- load

async function loadCase(opts: Options, facts: string[]): Promise<void> {
  const members = Array.from({ length: opts.members }, (_, i) => `h${i + 1}`);
  const dbHost = `h${opts.members + 1}`;
  const fleet = await startCrashableFleet({
    hosts: [...members.map(() => ({ roles: ['web-nginx' as const] })), { roles: ['db' as const] }],
  });
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
    const settled = await settleBounded(domains, opts.concurrency, async (domain) => {
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
      s.ok ? [] : [`${domains[i]}: ${String(((s.error as Error).cause as Error | undefined)?.message ?? s.error)}`],
    );
    // What must be there: the sites that installed; a failed install must have left nothing behind.
    const installed = domains.filter((_, i) => settled[i]?.ok === true);
    latencies.sort((a, b) => a - b);
    facts.push(
      `${opts.sites} installs, ${opts.concurrency} at a time: ${seconds(installMs)} ` +
        `(${((opts.sites / installMs) * 60_000).toFixed(1)} sites/min); per install median ` +
        `${seconds(percentile(latencies, 50))}, p95 ${seconds(percentile(latencies, 95))}, max ${seconds(latencies.at(-1) ?? NaN)}`,
    );
    if (busyServerRetries > 0)
      facts.push(`client calls asked again because the Temporal server was too busy: ${busyServerRetries}`);
    facts.push(
      `failed installs: ${failures.length}${failures.length ? ` (${failures.map((f) => f.slice(0, 240)).join(' | ')})` : ''}`,
    );

    // Every node: one vhost and one directory per installed site, nothing else (no temp file, no leftover).
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
      assert.deepEqual(
        vhosts.split('\n').filter(Boolean).sort(),
        installed,
        `${host}: one vhost per site, nothing else`,
      );
      assert.deepEqual(dirs.split('\n').filter(Boolean).sort(), installed, `${host}: one directory per site`);
    }
    // The database server: one database per site, one account per member, one WordPress admin.
    const sql = async (query: string) =>
      (await fleet.bed.exec(dbHost, ['mysql', '--batch', '--skip-column-names', '-e', query])).stdout;
    const names = installed.map(siteDatabaseName);
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
    facts.push(`nodes and database server hold exactly the ${installed.length} installed sites, once each`);

    t0 = Date.now();
    const report = await runWorkflow<VerifyReport>(fleet, 'VerifyClusterNodes', workflowIds.verify('cluster', 'c1'), {
      group,
      platforms: [platform],
      sites: installed.map((d) => wordpressSite(d, dbHost)),
      dbServers: [fleet.server(dbHost)],
    });
    const failing = report.nodes.flatMap((n) => n.checks.filter((c) => !c.ok).map((c) => `${n.server}:${c.name}`));
    facts.push(
      `VerifyClusterNodes of ${installed.length} sites on ${opts.members} members: ${seconds(Date.now() - t0)}, ` +
        `${failing.length} failing check(s)`,
    );
    assert.deepEqual(failing, [], 'every check of every node passes');
    assert.equal(failures.length, 0, `${failures.length} of ${opts.sites} installs failed`);
  } finally {
    await fleet.close();
  }
}

// ---------------------------------------------------------------- quick-crash

async function quickCrashCase(facts: string[]): Promise<void> {
  const fleet = await startCrashableFleet({
    hosts: [{ roles: ['web-nginx', 'nfs'] }, { roles: ['web-nginx'] }, { roles: ['web-nginx'] }],
  });
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
  } finally {
    await fleet.close();
  }
}

// ---------------------------------------------------------------- long-cut

async function longCutCase(facts: string[]): Promise<void> {
  const members = ['h1', 'h2', 'h3'];
  const fleet = await startCrashableFleet({ hosts: members.map(() => ({ roles: ['web-nginx' as const] })) });
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
  } finally {
    await fleet.close();
  }
}

// ---------------------------------------------------------------- member-down-late

async function memberDownLateCase(facts: string[]): Promise<void> {
  const members = ['h1', 'h2', 'h3'];
  const fleet = await startCrashableFleet({
    hosts: [...members.map(() => ({ roles: ['web-nginx' as const] })), { roles: ['db' as const] }],
  });
  const downMs = 40_000;
  try {
    const group = clusterGroup(
      'c1',
      members.map((n) => fleet.server(n)),
    );
    const platform = wordpress({ kind: 'cluster', name: 'c1' });
    await runWorkflow(fleet, 'CreatePlatformOnCluster', workflowIds.platform('wp'), { platform, group });
    const blog = 'blog.example.com';
    await runWorkflow(fleet, 'InstallSiteOnCluster', workflowIds.site(blog), {
      site: wordpressSite(blog, 'h4'),
      platform,
      group,
      dbServer: fleet.server('h4'),
    });
    const before = await groupSnapshot(fleet.bed, members, 'h4');
    const domain = 'late.example.com';
    const handle = await fleet.start('InstallSiteOnCluster', workflowIds.site(domain), {
      site: wordpressSite(domain, 'h4'),
      platform,
      group,
      dbServer: fleet.server('h4'),
    });
    await waitForPending(handle, (pending) => pending.some((p) => p.type === 'runSiteInstaller'));
    const stoppedAt = Date.now();
    await fleet.bed.stopHost('h3');
    let outcome = 'completed';
    try {
      await sleep(downMs - 5_000);
      // What the members that stayed up hold while h3 is still down.
      const during = await groupSnapshot(fleet.bed, ['h1', 'h2'], 'h4');
      const held = ['h1', 'h2', 'h4'].filter((h) => during[h] !== before[h]);
      facts.push(
        `still holding the failed site ${seconds(downMs - 5_000)} into the outage: ${held.join(', ') || 'none'}`,
      );
    } finally {
      await sleep(5_000);
      await fleet.bed.startHost('h3');
    }
    await handle.result().catch((err: unknown) => {
      outcome = String(((err as Error).cause as Error | undefined)?.message ?? err);
    });
    facts.push(
      `h3 down ${seconds(downMs)}; the install ended ${seconds(Date.now() - stoppedAt)} after: ${outcome.slice(0, 400)}`,
    );
    const after = await groupSnapshot(fleet.bed, members, 'h4');
    assert.deepEqual({ h1: after.h1, h2: after.h2, h4: after.h4 }, { h1: before.h1, h2: before.h2, h4: before.h4 });
    facts.push('h1, h2 and the database server are as before');
    const leftover = (await siteOnNode(fleet.bed, 'h3', domain, 'wp')).trim().replace(/\n/g, ', ');
    if (leftover) {
      const res = await fleet.bed.httpGet('h3', '/', { headers: { Host: domain } });
      facts.push(`left on h3: ${leftover}; h3 answers ${res.status} for ${domain}, whose database is gone`);
    }
    assert.equal(after.h3, before.h3, 'h3 is as before once it is back (no vhost or directory of the failed install)');
    facts.push('h3 is as before');
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

  const cases: Record<CaseName, (facts: string[]) => Promise<void>> = {
    load: (facts) => loadCase(opts, facts),
    'quick-crash': quickCrashCase,
    'long-cut': longCutCase,
    'member-down-late': memberDownLateCase,
  };
  const rows: string[] = [];
  let failed = 0;
  for (const name of picked as CaseName[]) {
    console.log(`\n=== ${name}`);
    const started = Date.now();
    const outcome: Outcome = { ok: true, seconds: 0, facts: [] };
    try {
      await cases[name](outcome.facts);
    } catch (error) {
      failed++;
      outcome.ok = false;
      outcome.facts.push(`FAILED: ${messageOf(error)}`);
    }
    outcome.seconds = (Date.now() - started) / 1000;
    for (const fact of outcome.facts) console.log(`  ${fact}`);
    const measured = outcome.facts.join('; ').replace(/\s+/g, ' ');
    rows.push(
      `| ${name} | ${outcome.ok ? 'survived' : 'FAILED'} | ${outcome.seconds.toFixed(0)} s | ${measured.slice(0, 1500)} |`,
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
