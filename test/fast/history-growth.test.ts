/**
 * Histories that must not grow with the sites (issue 16): VerifyClusterNodes, ResyncCluster, AddClusterMember and
 * RemoveClusterMember over 8 members, the real workflow code, activities mocked (fast layer: a local dev server, no
 * test hosts). Each runs with few and with many sites; the events other than workflow tasks (whose count depends on
 * timing) must be the same, and the bytes per site small enough that 1,000 sites stay under 10 % of Temporal's
 * per-run limits (51,200 events, 50 MB). The per-site bytes are the sites in the inputs and what the mocked
 * activities answer in the real format: for verify one short line per site and member, for the batches the sites
 * they repaired or changed (every one: the worst case) and the database accounts they snapshot.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { temporal } from '@temporalio/proto';
import { bundleWorkflowCode, DefaultLogger, Runtime, Worker, type WorkflowBundle } from '@temporalio/worker';
import { sitefleetWebpackConfig } from '../../workers/bundler-options';
import { startEphemeralTemporal } from '../../devserver/ephemeral';
import type { Platform, Server, Site } from '../../domain/model';
import { clusterGroup } from '../../domain/operations';
import type { NodeReport } from '../../domain/verify-report';

const LIMIT_EVENTS = 51_200;
const LIMIT_BYTES = 50 * 1024 * 1024;
const WORKFLOW_TASK_EVENTS = new Set([
  temporal.api.enums.v1.EventType.EVENT_TYPE_WORKFLOW_TASK_SCHEDULED,
  temporal.api.enums.v1.EventType.EVENT_TYPE_WORKFLOW_TASK_STARTED,
  temporal.api.enums.v1.EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED,
]);

function server(n: number): Server {
  return {
    name: `w${n}`,
    host: `192.0.2.${n}`,
    ssh: { user: 'root', port: 22, hostKey: 'SHA256:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA' },
    http: { type: 'nginx', port: 80, phpFpmSocket: '/run/php/php8.2-fpm.sock' },
    aegirRoot: '/var/aegir',
    aegirUser: 'aegir',
  };
}
const members = Array.from({ length: 8 }, (_, i) => server(i + 1));
const db: Server = { ...server(20), name: 'db', http: undefined, db: { type: 'mariadb', port: 3306 } } as Server;
const platform: Platform = {
  name: 'wp',
  target: { kind: 'cluster', name: 'c1' },
  source: { type: 'path', path: '/usr/share/wordpress' },
  profile: 'wordpress',
};
const sitesOf = (count: number): Site[] =>
  Array.from({ length: count }, (_, i) => ({
    domain: `site-${i + 1}.growth.example.com`,
    aliases: [],
    platform: 'wp',
    dbServer: 'db',
    https: false,
    status: 'enabled' as const,
  }));

/** What the workflows call, answering as the real activities do (checks and summaries in their real format). */
const activities = {
  verifyNode: async (i: { server: Server; sites: Site[]; fullProbeDomains?: string[] }): Promise<NodeReport> => ({
    server: i.server.name,
    ok: true,
    aegirIds: { uid: 1500, gid: 1500 },
    checks: [
      { name: 'ssh', ok: true, detail: 'new connection accepted, host key SHA256:AAAA as pinned' },
      { name: 'config-test', ok: true, detail: 'passes' },
      { name: 'aegir-ids', ok: true, detail: 'aegir 1500:1500' },
      { name: 'drift:wp', ok: true, detail: 'in line with the source' },
      { name: 'db-resolution:192.0.2.20', ok: true, detail: '192.0.2.20 is an address' },
      ...i.sites.map((s) =>
        i.fullProbeDomains?.includes(s.domain)
          ? { name: `probe:${s.domain}`, ok: true, detail: 'answers 200 (full probe)' }
          : { name: `probe:${s.domain}`, ok: true, detail: 'health check: answers 200' },
      ),
    ],
  }),
  syncPlatformToServers: async (i: { servers: Server[] }) => ({
    results: i.servers.map((s) => ({ server: s.name, ok: true, summary: { filesChanged: 0, itemized: [] } })),
  }),
  syncPlatform: async (i: { server: Server }) => ({ server: i.server.name, filesChanged: 0, itemized: [] }),
  // The worst case for the bytes: every site's directory and vhost repaired (a new member has none of them).
  ensureSitesOnServer: async (i: { server: Server; sites: Site[] }) => ({
    server: i.server.name,
    repaired: i.sites.flatMap((s) => [`site dir ${s.domain}`, `vhost ${s.domain}`]),
    sites: i.sites.length,
  }),
  ensureWebConfig: async (i: { server: Server }) => ({ server: i.server.name, changed: true }),
  platformExists: async () => false,
  removePlatform: async (i: { server: Server }) => ({ server: i.server.name, removed: true }),
  // Every site's user has an account on each of the 8 members: AddClusterMember grants the 8th its accounts again,
  // RemoveClusterMember revokes them (one batch for every site).
  inspectDatabasesOnServer: async (i: { dbServer: Server; sites: { domain: string }[] }) => ({
    server: i.dbServer.name,
    accounts: i.sites.map((s) => ({ domain: s.domain, hosts: members.map((m) => m.host) })),
  }),
  setDatabaseAccountsOnServer: async (i: { dbServer: Server; accounts: unknown[] }) => ({
    server: i.dbServer.name,
    sites: i.accounts.length,
  }),
  ensureDatabasesOnServer: async (i: { dbServer: Server; sites: { domain: string }[] }) => ({
    server: i.dbServer.name,
    sites: i.sites.length,
    changed: i.sites.map((s) => s.domain),
  }),
  inspectSitesOnServer: async (i: { server: Server }) => ({ server: i.server.name, siteDirs: [], vhosts: [] }),
  removeSitesFromServer: async (i: { server: Server; sites: Site[] }) => ({
    server: i.server.name,
    vhostsChanged: i.sites.length,
    siteDirsRemoved: i.sites.length,
  }),
  probeSitesOnServer: async (i: { server: Server; sites: Site[] }) => ({
    server: i.server.name,
    probed: i.sites.length,
    failures: [],
  }),
};

/** Each workflow's input for `count` sites: verify and resync over 8 members, the 8th member added or removed. */
const inputs: Record<string, (count: number) => unknown> = {
  VerifyClusterNodes: (count) => ({
    group: clusterGroup('c1', members),
    platforms: [platform],
    sites: sitesOf(count),
    dbServers: [db],
  }),
  ResyncCluster: (count) => ({
    group: clusterGroup('c1', members),
    platforms: [platform],
    sites: sitesOf(count),
    dbServers: [db],
  }),
  AddClusterMember: (count) => ({
    group: clusterGroup('c1', members.slice(0, 7)),
    member: members[7],
    platforms: [platform],
    sites: sitesOf(count),
    dbServers: [db],
  }),
  RemoveClusterMember: (count) => ({
    group: clusterGroup('c1', members),
    member: members[7],
    platforms: [platform],
    sites: sitesOf(count),
    dbServers: [db],
  }),
};

void describe('histories do not grow with the sites', () => {
  let env: TestWorkflowEnvironment;
  let bundle: WorkflowBundle;
  const taskQueue = `growth-${randomUUID()}`;

  before(async () => {
    Runtime.install({ logger: new DefaultLogger('ERROR') });
    [env, bundle] = await Promise.all([
      startEphemeralTemporal(),
      bundleWorkflowCode({
        workflowsPath: require.resolve('../../workflows'),
        webpackConfigHook: sitefleetWebpackConfig(),
        logger: new DefaultLogger('ERROR'),
      }),
    ]);
  });
  after(async () => {
    await env?.teardown();
  });

  /**
   * Runs the workflow and returns its history's length and size as the server reports them, and the events that
   * are not workflow tasks. How many workflow tasks a run takes depends on how activity completions happen to
   * batch (timing), so only the other events (activities, timers, markers, start and close) are compared.
   */
  async function historyOf(
    workflowType: string,
    input: unknown,
  ): Promise<{ events: number; bytes: number; workEvents: number }> {
    const worker = await Worker.create({
      connection: env.nativeConnection,
      taskQueue,
      workflowBundle: bundle,
      activities,
    });
    const handle = await env.client.workflow.start(workflowType, {
      taskQueue,
      workflowId: `${workflowType}-${randomUUID()}`,
      args: [input],
    });
    await worker.runUntil(handle.result());
    const { raw } = await handle.describe();
    const history = await handle.fetchHistory();
    const workEvents = (history.events ?? []).filter((e) => !WORKFLOW_TASK_EVENTS.has(Number(e.eventType))).length;
    return {
      events: Number(raw.workflowExecutionInfo?.historyLength ?? 0),
      bytes: Number(raw.workflowExecutionInfo?.historySizeBytes ?? 0),
      workEvents,
    };
  }

  for (const [workflowType, input] of Object.entries(inputs)) {
    void test(`${workflowType} on 8 members: the same events for 10 and 400 sites, bytes within 10 % at 1,000`, async () => {
      const few = await historyOf(workflowType, input(10));
      const many = await historyOf(workflowType, input(400));
      console.log(
        `${workflowType}: ${few.workEvents} / ${many.workEvents} events besides workflow tasks at 10 / 400 sites ` +
          `(${few.events} / ${many.events} in all); ${few.bytes} / ${many.bytes} bytes`,
      );
      assert.equal(
        many.workEvents,
        few.workEvents,
        `${workflowType}: events other than workflow tasks at 10 sites ${few.workEvents}, at 400 ${many.workEvents}`,
      );
      assert.ok(many.events < LIMIT_EVENTS / 10, `${workflowType}: ${many.events} events`);
      const perSite = (many.bytes - few.bytes) / 390;
      const at1000 = few.bytes + perSite * 990;
      assert.ok(
        at1000 < LIMIT_BYTES / 10,
        `${workflowType}: ${perSite.toFixed(0)} bytes per site, ${(at1000 / 1e6).toFixed(2)} MB at 1,000 sites`,
      );
      console.log(
        `${workflowType}: ${perSite.toFixed(0)} bytes per site; ${(at1000 / 1e6).toFixed(2)} MB at 1,000 sites`,
      );
    });
  }
});
