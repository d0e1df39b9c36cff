/**
 * What every scenario runs with: the bed, the sitefleet worker (when it started), the baselines' ssh masters and
 * Ansible, and helpers to build contenders and result cells.
 */
import { promises as fs } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { bundleWorkflowCode, DefaultLogger } from '@temporalio/worker';
import { findTemporalCli, temporalCliVersion } from '../devserver/temporal-cli';
import type { Server } from '../domain/model';
import { startEphemeralTemporal } from '../devserver/ephemeral';
import type { Bed } from '../testbed';
import { type AnsibleSetup, type BaselineContext, type BaselineName, runBaseline, type SshMasters } from './baselines';
import { type Contender, errorText, type Measured, timed } from './measure';
import type { Plan } from './options';
import type { Cell, ContenderName, ScenarioId } from './report';
import { SITEFLEET_WORKFLOW_INTERCEPTOR_MODULES, sitefleetWebpackConfig } from '../workers/bundler-options';
import { readServers, type SitefleetContext } from './sitefleet';
import { BenchWorker } from './worker';
import type { Teardown } from './teardown';

export const log = (line: string): void => console.log(line);

export async function removeOnHosts(bed: Bed, hosts: readonly string[], dir: string): Promise<void> {
  await Promise.all(hosts.map((h) => bed.exec(h, ['rm', '-rf', '--', dir], { timeoutMs: 120_000 })));
}

export interface Sitefleet {
  ctx: SitefleetContext;
  worker: BenchWorker;
  servers: Map<string, Server>;
}

/** A Temporal dev server, the workflow bundle and a worker process; undefined (with the reason) when any fails. */
export async function startSitefleet(
  bed: Bed,
  plan: Plan,
  workDir: string,
  teardown: Teardown,
): Promise<{ sitefleet?: Sitefleet; error?: string; tools: Record<string, string> }> {
  const tools: Record<string, string> = {};
  try {
    const cli = findTemporalCli();
    if (cli) tools.temporalCli = temporalCliVersion(cli);
    const started = performance.now();
    const env: TestWorkflowEnvironment = await startEphemeralTemporal();
    teardown.push('Temporal dev server', () => env.teardown());
    log(`Temporal dev server at ${env.address} (${((performance.now() - started) / 1000).toFixed(1)} s)`);
    const bundleStarted = performance.now();
    const { code } = await bundleWorkflowCode({
      workflowsPath: require.resolve('../workflows'),
      logger: new DefaultLogger('WARN'),
      webpackConfigHook: sitefleetWebpackConfig(),
      workflowInterceptorModules: SITEFLEET_WORKFLOW_INTERCEPTOR_MODULES,
    });
    const bundlePath = path.join(workDir, 'workflow-bundle.js');
    await fs.writeFile(bundlePath, code);
    log(`workflow bundle built (${((performance.now() - bundleStarted) / 1000).toFixed(1)} s)`);
    const taskQueue = `bench-${process.pid}`;
    const workerEnv: Record<string, string> = {
      SITEFLEET_DATA_DIR: path.join(workDir, 'data'),
      SITEFLEET_SECRET_FILE: path.join(workDir, 'data', 'worker-secret'),
      SITEFLEET_SSH_KEY: bed.paths.clientKey,
    };
    const worker = await BenchWorker.start({
      temporalAddress: env.address,
      namespace: env.namespace ?? 'default',
      taskQueue,
      bundlePath,
      env: workerEnv,
    });
    teardown.push('sitefleet worker', () => worker.stop());
    log(`sitefleet worker ready (pid ${worker.memory().pid})`);
    const servers = await readServers(bed.paths.inventoryFile);
    return {
      sitefleet: { ctx: { client: env.client, taskQueue, workflowTimeoutMs: plan.workflowTimeoutMs }, worker, servers },
      tools,
    };
  } catch (error) {
    return { error: errorText(error), tools };
  }
}

/** Runs a sitefleet step unless the worker has died, and fails at once if it dies meanwhile. */
export function guarded<T>(sf: Sitefleet, fn: () => Promise<T>): Promise<T> {
  const dead = sf.worker.failure;
  if (dead) return Promise.reject(new Error(dead));
  return sf.worker.guard(fn());
}

export function serversOf(sf: Sitefleet, names: readonly string[]): Server[] {
  return names.map((n) => {
    const s = sf.servers.get(n);
    if (!s) throw new Error(`the bed's inventory has no server ${n}`);
    return s;
  });
}

export function toCells(
  scenario: ScenarioId,
  members: number,
  measured: Map<string, Measured>,
  sites?: number,
): Cell[] {
  return [...measured].map(([contender, m]) => ({
    scenario,
    members,
    ...(sites !== undefined ? { sites } : {}),
    contender: contender as ContenderName,
    ...(m.summary ? { summary: m.summary } : {}),
    ...(m.error !== undefined ? { error: m.error } : {}),
    notes: m.notes,
    ...(m.breakdown ? { breakdown: m.breakdown } : {}),
    loadAverage: os.loadavg()[0] ?? 0,
  }));
}

export interface Runtime {
  plan: Plan;
  bed: Bed;
  sf?: Sitefleet;
  sfError?: string;
  baseline: BaselineContext;
  masters: SshMasters;
  ansible?: AnsibleSetup;
  ansibleError?: string;
  webHosts: string[];
}

export function baselineContenders(
  rt: Runtime,
  hosts: string[],
  dest: (b: BaselineName, round: number) => string,
  keep: boolean,
): Contender[] {
  return rt.plan.baselines.map((b) => ({
    name: b,
    trial: (round: number) => ({
      prepare: async () => {
        if (b === 'rsync-par-mux') await rt.masters.ensure(hosts);
        if (b === 'ansible' && !rt.ansible)
          throw new Error(`Ansible is not usable: ${rt.ansibleError ?? 'not set up'}`);
      },
      run: () =>
        timed(() => runBaseline(b, rt.baseline, { masters: rt.masters, ansible: rt.ansible }, hosts, dest(b, round))),
      cleanup: keep ? undefined : () => removeOnHosts(rt.bed, hosts, dest(b, round)),
    }),
  }));
}

/** A contender that fails every run with `reason` (sitefleet when its worker could not start). */
export const unavailable = (name: string, reason: string): Contender => ({
  name,
  trial: () => ({ run: () => Promise.reject(new Error(reason)) }),
});
