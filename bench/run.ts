/**
 * The sitefleet benchmark (issue 7): `npx tsx bench/run.ts [--runs N] [--quick] ...` (`npm run bench`).
 *
 * Brings up a test bed (8 nginx + php-fpm web hosts and a MariaDB host), a Temporal dev server and a sitefleet
 * worker, then measures on Debian's WordPress tree, side by side in one run:
 *   1. full fan-out of a new platform to 2, 4 and 8 members (CreatePlatformOnCluster);
 *   2. a no-op ResyncCluster (nothing changed) on 2, 4 and 8 members;
 *   3. InstallSiteOnCluster on 3 members: latency of one site, and sites installed in a row;
 *   4. VerifyClusterNodes on 8 members with 1, 10 and 50 sites;
 * and the same transfers by the baselines (bench/baselines.ts). Prints medians, ratios and PASS/MISS per target,
 * and writes bench-results/DATE.json. See docs/benchmarks.md. Each scenario is a file in bench/scenarios/; the
 * options are bench/options.ts, the clean-up bench/teardown.ts, what scenarios share bench/runtime.ts.
 */
import { promises as fs } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { assertBedSupported } from '../testbed';
import { type BaselineContext, prepareAnsible, SshMasters } from './baselines';
import { defaultBenchBaseDir, reclaimStaleBeds, startBenchBed, webHostName } from './bed';
import { checkTools, commandOutput, countBeds, filesystemType, treeSize } from './machine';
import { errorText } from './measure';
import { parsePlan, SCENARIOS, type ScenarioName } from './options';
import { relayOnShapedLinks } from './scenarios/relay';
import { fanoutScenario } from './scenarios/fanout';
import { installScenario } from './scenarios/install';
import { noopScenario } from './scenarios/noop';
import { verifyScenario } from './scenarios/verify';
import { scaleScenario } from './scenarios/scale';
import { type BenchResults, type Cell, evaluateTargets, renderReport, writeResults } from './report';
import { renderRelayTable } from './relay';
import { log, type Runtime, startSitefleet } from './runtime';
import { downOnExit, Teardown } from './teardown';

async function main(): Promise<number> {
  const plan = parsePlan(process.argv);
  if (plan.show !== undefined) {
    const saved = JSON.parse(await fs.readFile(plan.show, 'utf8')) as BenchResults;
    log(renderReport(saved));
    if (saved.relay) log(`\n${renderRelayTable(saved.relay.rows, saved.relay)}`);
    return 0;
  }
  assertBedSupported();
  await checkTools(plan);
  const startedAt = new Date();
  const loadAverageAtStart = os.loadavg();
  const otherBedsAtStart = await countBeds();
  const teardown = new Teardown();
  for (const [signal, code] of [
    ['SIGINT', 130],
    ['SIGTERM', 143],
    ['SIGHUP', 129],
  ] as const) {
    process.once(signal, () => {
      log(`\n${signal}: tearing down...`);
      void teardown.run().finally(() => process.exit(code));
    });
  }
  const problems: string[] = [];
  const workDir = await fs.mkdtemp(path.join(os.tmpdir(), 'sitefleet-bench-'));
  teardown.push('scratch directory', () => fs.rm(workDir, { recursive: true, force: true }));
  try {
    const needsSites = plan.scenarios.includes('verify');
    const webHosts = Math.max(
      ...(plan.scenarios.some((s) => s === 'fanout' || s === 'noop') ? plan.fanoutSizes : [1]),
      needsSites ? plan.verifyMembers : 1,
      plan.scenarios.includes('install') ? plan.installMembers : 1,
      plan.scenarios.includes('relay') ? Math.max(...plan.relaySizes) : 1,
      plan.scenarios.includes('scale') ? plan.scaleMembers : 1,
    );
    const baseDir = plan.baseDir ?? (await defaultBenchBaseDir());
    await reclaimStaleBeds(baseDir, log);
    log(`starting a bed of ${webHosts} web hosts and a db host under ${baseDir}...`);
    const bedStarted = performance.now();
    const bed = await startBenchBed({ webHosts, baseDir });
    const bedStartSeconds = (performance.now() - bedStarted) / 1000;
    const cancelExitDown = downOnExit(bed, baseDir);
    teardown.push(`bed ${bed.name}`, async () => {
      await bed.down();
      cancelExitDown();
    });
    const hostStateDir = path.join(bed.hosts[0]?.dir ?? bed.paths.hostsDir, 'aegir');
    const filesystem = await filesystemType(hostStateDir);
    log(`bed ${bed.name} up in ${bedStartSeconds.toFixed(1)} s; host state on ${filesystem} (${hostStateDir})`);
    const names = Array.from({ length: webHosts }, (_, i) => webHostName(i + 1));
    await Promise.all(
      names.map((h) => bed.exec(h, ['install', '-d', '-o', 'aegir', '-g', 'aegir', '/var/aegir/platforms'])),
    );

    const tools: Record<string, string> = {
      rsync: await commandOutput(['rsync', '--version']),
      ssh: await commandOutput(['ssh', '-V']),
      node: process.version,
    };
    const baseline: BaselineContext = { bed, source: plan.source, workDir };
    const masters = new SshMasters(baseline);
    teardown.push('ssh control masters', () => masters.closeAll());
    const rt: Runtime = { plan, bed, baseline, masters, webHosts: names };
    if (plan.baselines.includes('ansible')) {
      try {
        rt.ansible = await prepareAnsible(baseline);
        tools.ansible = `${rt.ansible.version}, module ${rt.ansible.module}`;
      } catch (error) {
        rt.ansibleError = errorText(error);
        problems.push(`Ansible: ${rt.ansibleError}`);
      }
    }
    if (plan.sitefleet) {
      const started = await startSitefleet(bed, plan, workDir, teardown);
      Object.assign(tools, started.tools);
      rt.sf = started.sitefleet;
      rt.sfError = started.error;
      if (started.error) {
        problems.push(`sitefleet could not start: ${started.error}`);
        log(`sitefleet could not start; measuring the baselines only:\n  ${started.error.slice(0, 1500)}`);
      }
    }

    const cells: Cell[] = [];
    let relay: BenchResults['relay'];
    const steps: Record<ScenarioName, (rt: Runtime) => Promise<Cell[]>> = {
      fanout: fanoutScenario,
      noop: noopScenario,
      install: installScenario,
      verify: verifyScenario,
      scale: scaleScenario,
      relay: async (r) => {
        relay = await relayOnShapedLinks(r);
        return [];
      },
    };
    for (const scenario of SCENARIOS) {
      if (!plan.scenarios.includes(scenario)) continue;
      try {
        cells.push(...(await steps[scenario](rt)));
      } catch (error) {
        problems.push(`scenario ${scenario} stopped: ${errorText(error)}`);
        log(`scenario ${scenario} stopped: ${errorText(error)}`);
      }
    }

    const source = {
      path: plan.source,
      filesystem: await filesystemType(plan.source),
      ...(await treeSize(plan.source)),
    };
    if (rt.sf) await rt.sf.worker.stop();
    const workerMemory = rt.sf?.worker.memory();
    const finishedAt = new Date();
    const results: BenchResults = {
      format: 1,
      startedAt: startedAt.toISOString(),
      finishedAt: finishedAt.toISOString(),
      durationSeconds: (finishedAt.getTime() - startedAt.getTime()) / 1000,
      argv: process.argv.slice(2),
      options: { ...plan, baseDir },
      machine: {
        hostname: os.hostname(),
        cores: os.cpus().length,
        cpuModel: os.cpus()[0]?.model ?? 'unknown',
        memoryBytes: os.totalmem(),
        kernel: `${os.type()} ${os.release()}`,
        node: process.version,
        loadAverageAtStart,
        loadAverageAtEnd: os.loadavg(),
        otherBedsAtStart,
      },
      hostState: { bedName: bed.name, dir: hostStateDir, filesystem, onTmpfs: filesystem === 'tmpfs', bedStartSeconds },
      source,
      tools,
      sitefleet: {
        available: rt.sf !== undefined,
        ...(rt.sfError !== undefined ? { error: rt.sfError } : {}),
        ...(workerMemory ? { worker: workerMemory } : {}),
      },
      cells,
      ...(relay ? { relay } : {}),
      targets: evaluateTargets(cells, workerMemory),
      problems,
    };
    log(renderReport(results));
    if (relay) log(`\n${renderRelayTable(relay.rows, relay)}`);
    log(`results: ${await writeResults(plan.outDir, results)}`);
    return 0;
  } finally {
    await teardown.run();
  }
}

main().then(
  (code) => process.exit(code),
  (error: unknown) => {
    console.error(`bench failed: ${errorText(error)}`);
    process.exit(1);
  },
);
