/**
 * The fast layer (`npm run test:fast`): workflow logic with mocked activities on a local Temporal dev server, no
 * test hosts and no root. It checks the order of compensations, that undo lanes on different servers run side by
 * side, allBounded's bound and failure, and that a failed InstallSiteOnCluster undoes every completed step.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import { ApplicationFailure } from '@temporalio/common';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { bundleWorkflowCode, DefaultLogger, Runtime, Worker, type WorkflowBundle } from '@temporalio/worker';
import { sitefleetWebpackConfig } from '../../workers/bundler-options';
import { WorkflowFailedError } from '@temporalio/client';
import { startEphemeralTemporal } from '../../devserver/ephemeral';
import type { Server, Site, Platform } from '../../domain/model';
import { clusterGroup, type InstallSiteInput } from '../../domain/operations';

/** What the mocked activities saw: `start NAME` and `end NAME`, in the order they happened. */
let events: string[] = [];
let inFlight = 0;
let maxInFlight = 0;
/** Resolvers of steps that wait for another step (see `waitFor`). */
const waiters = new Map<string, () => void>();
/** Step names whose arrival another step waits for: NAME -> the step that must have started first. */
let waitFor = new Map<string, string>();
let waitTimedOut: string[] = [];

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function step(name: string, delayMs = 0): Promise<string> {
  events.push(`start ${name}`);
  waiters.get(name)?.();
  inFlight++;
  maxInFlight = Math.max(maxInFlight, inFlight);
  try {
    const other = waitFor.get(name);
    if (other !== undefined && !events.includes(`start ${other}`)) {
      // Wait (bounded) for the other step: if it can only start after this one ends, the wait times out.
      const arrived = await Promise.race([
        new Promise<boolean>((r) => waiters.set(other, () => r(true))),
        sleep(5000).then(() => false),
      ]);
      if (!arrived) waitTimedOut.push(`${name} waited for ${other}`);
    }
    await sleep(delayMs);
    return name;
  } finally {
    inFlight--;
    events.push(`end ${name}`);
  }
}

const serverName = (input: { server?: Server; dbServer?: Server }) => input.server?.name ?? input.dbServer?.name;

/** The activities InstallSiteOnCluster calls, mocked: everything answers at once, the installer fails. */
const installActivities = {
  checkResolution: async (i: { server: Server }) => step(`checkResolution ${serverName(i)}`),
  inspectSite: async (i: { server: Server }) => {
    await step(`inspectSite ${serverName(i)}`);
    return { siteDirExists: false, vhost: null };
  },
  inspectDatabase: async (i: { dbServer: Server }) => {
    await step(`inspectDatabase ${serverName(i)}`);
    return { databaseExists: false, userExists: false };
  },
  ensureDatabase: async (i: { dbServer: Server }) => step(`ensureDatabase ${serverName(i)}`),
  ensureSiteDir: async (i: { server: Server }) => step(`ensureSiteDir ${serverName(i)}`),
  installVhost: async (i: { server: Server }) => step(`installVhost ${serverName(i)}`),
  runSiteInstaller: async (i: { server: Server }) => {
    await step(`runSiteInstaller ${serverName(i)}`);
    throw ApplicationFailure.create({ type: 'RemoteCommandFailed', message: 'installer exited 1', nonRetryable: true });
  },
  restoreVhost: async (i: { server: Server }) => step(`restoreVhost ${serverName(i)}`),
  removeSiteDir: async (i: { server: Server }) => step(`removeSiteDir ${serverName(i)}`),
  dropDatabase: async (i: { dbServer: Server }) => step(`dropDatabase ${serverName(i)}`),
};

const activities = {
  ...installActivities,
  step: async (name: string, delayMs: number) => step(name, delayMs),
  fail: async (message: string) => {
    events.push(`fail ${message}`);
    throw ApplicationFailure.create({ type: 'Refused', message, nonRetryable: true });
  },
};

function server(name: string, n: number): Server {
  return {
    name,
    host: `192.0.2.${n}`,
    ssh: { user: 'root', port: 22, hostKey: 'SHA256:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA' },
    http: { type: 'nginx', port: 80, phpFpmSocket: '/run/php/php8.2-fpm.sock' },
    aegirRoot: '/var/aegir',
    aegirUser: 'aegir',
  };
}

function reset(): void {
  events = [];
  inFlight = 0;
  maxInFlight = 0;
  waiters.clear();
  waitFor = new Map();
  waitTimedOut = [];
}

void describe('fast layer: workflows with mocked activities', () => {
  let env: TestWorkflowEnvironment;
  let bundle: WorkflowBundle;
  const taskQueue = `fast-${randomUUID()}`;

  before(async () => {
    Runtime.install({ logger: new DefaultLogger('ERROR') });
    [env, bundle] = await Promise.all([
      startEphemeralTemporal(),
      bundleWorkflowCode({
        workflowsPath: require.resolve('./workflows'),
        webpackConfigHook: sitefleetWebpackConfig(),
        logger: new DefaultLogger('ERROR'),
      }),
    ]);
  });
  after(async () => {
    await env?.teardown();
  });

  async function run<T>(workflowType: string, args: unknown[]): Promise<T> {
    const worker = await Worker.create({
      connection: env.nativeConnection,
      taskQueue,
      workflowBundle: bundle,
      activities,
    });
    return worker.runUntil(
      env.client.workflow.execute<(...a: unknown[]) => Promise<T>>(workflowType, {
        taskQueue,
        workflowId: `${workflowType}-${randomUUID()}`,
        args,
      }),
    );
  }

  void test('the saga undoes newest first; an undo on no server is a barrier between the lanes', async () => {
    reset();
    const failures = await run<string[]>('SagaOrder', [
      [
        { name: 'a on x', on: 'x', delayMs: 0 },
        { name: 'b anywhere', delayMs: 0 },
        { name: 'c on y', on: 'y', delayMs: 100 },
        { name: 'd on x', on: 'x', delayMs: 0 },
      ],
    ]);
    assert.deepEqual(failures, []);
    const at = (e: string) => events.indexOf(e);
    for (const name of ['a on x', 'b anywhere', 'c on y', 'd on x']) assert.ok(at(`end ${name}`) >= 0, name);
    assert.ok(at('end d on x') < at('start b anywhere'), 'the lane before the barrier ends before it');
    assert.ok(at('end c on y') < at('start b anywhere'), 'every lane before the barrier ends before it');
    assert.ok(at('end b anywhere') < at('start a on x'), 'the barrier ends before the older undos start');
  });

  void test('undo lanes on different servers run side by side', async () => {
    reset();
    // "d on x" waits until "c on y" has started: with one lane after the other it would wait in vain.
    waitFor.set('d on x', 'c on y');
    await run<string[]>('SagaOrder', [
      [
        { name: 'c on y', on: 'y', delayMs: 0 },
        { name: 'd on x', on: 'x', delayMs: 0 },
      ],
    ]);
    assert.deepEqual(waitTimedOut, []);
    assert.ok(events.indexOf('start c on y') < events.indexOf('end d on x'), events.join(', '));
  });

  void test('allBounded keeps at most N in flight and returns results in input order', async () => {
    reset();
    const results = await run<string[]>('Bounded', [6, 2, null]);
    assert.deepEqual(
      results,
      [0, 1, 2, 3, 4, 5].map((i) => `item ${i}`),
    );
    assert.equal(maxInFlight, 2);
  });

  void test('allBounded fails with the first failure only after every other item has finished', async () => {
    reset();
    await assert.rejects(run('Bounded', [5, 2, 1]), (err: unknown) => {
      assert.ok(err instanceof WorkflowFailedError);
      return true;
    });
    assert.deepEqual(
      [0, 2, 3, 4].filter((i) => !events.includes(`end item ${i}`)),
      [],
      `every other item finished: ${events.join(', ')}`,
    );
  });

  void test('a failed InstallSiteOnCluster undoes every completed step, each member newest first', async () => {
    reset();
    const members = ['m1', 'm2', 'm3'].map((n, i) => server(n, i + 10));
    const db: Server = { ...server('db', 20), db: { type: 'mariadb', port: 3306 } };
    const site: Site = {
      domain: 'fast.example.com',
      aliases: [],
      platform: 'wp',
      dbServer: 'db',
      https: false,
      status: 'enabled',
    };
    const platform: Platform = {
      name: 'wp',
      target: { kind: 'cluster', name: 'c1' },
      source: { type: 'path', path: '/srv/wp' },
      profile: 'wordpress',
    };
    const input: InstallSiteInput = { site, platform, group: clusterGroup('c1', members), dbServer: db };
    await assert.rejects(run('InstallSiteOnCluster', [input]), (err: unknown) => {
      assert.ok(err instanceof WorkflowFailedError);
      assert.match(String(err.cause?.message), /run the WordPress installer failed: installer exited 1/);
      assert.match(String(err.cause?.message), /Every completed step was undone/);
      return true;
    });
    const at = (e: string) => events.indexOf(e);
    const failedAt = at('end runSiteInstaller m1');
    assert.ok(failedAt >= 0, 'the installer ran on the first member');
    for (const m of ['m1', 'm2', 'm3']) {
      assert.ok(at(`end installVhost ${m}`) < failedAt && at(`end ensureSiteDir ${m}`) < failedAt, m);
      assert.ok(at(`start restoreVhost ${m}`) > failedAt, `vhost on ${m} restored after the failure`);
      assert.ok(at(`start removeSiteDir ${m}`) > at(`end restoreVhost ${m}`), `on ${m}: vhost first, then the dir`);
    }
    assert.ok(at('start dropDatabase db') > failedAt, 'the database is dropped');
    const undos = events.filter((e) => /^start (restoreVhost|removeSiteDir|dropDatabase) /.test(e));
    assert.equal(undos.length, 7, `each undo ran once: ${undos.join(', ')}`);
  });
});
