/** Scenario 3: InstallSiteOnCluster on 3 members: latency of one site, and sites installed in a row. */
import * as os from 'node:os';
import type { Platform, Server, Site } from '../../domain/model';
import { DB_HOST_NAME } from '../bed';
import { breakdownNearMedian, errorText, measureRounds, type RunOutcome } from '../measure';
import type { Cell, ScenarioId } from '../report';
import { guarded, log, type Runtime, type Sitefleet, serversOf, toCells } from '../runtime';
import {
  clusterGroupAllAtOnce,
  createPlatformOnCluster,
  installSiteOnCluster,
  pathPlatform,
  wordpressSite,
} from '../sitefleet';
import { summarize } from '../stats';

/** Creates the platform of a site scenario; throws with a clear message. */
export async function sitePlatform(sf: Sitefleet, cluster: string, hosts: string[], source: string): Promise<Platform> {
  const platform = pathPlatform(`wp-${cluster}`, cluster, source);
  try {
    const created = await guarded(sf, () =>
      createPlatformOnCluster(sf.ctx, clusterGroupAllAtOnce(cluster, serversOf(sf, hosts)), platform),
    );
    log(`  set-up: platform ${platform.name} created on ${hosts.length} members in ${created.seconds.toFixed(2)} s`);
  } catch (error) {
    throw new Error(`set-up (CreatePlatformOnCluster ${platform.name}) failed: ${errorText(error)}`);
  }
  return platform;
}

/** Installs `count` sites one after another; the cell holds the per-site times and the batch's wall-clock. */
export async function installInARow(
  sf: Sitefleet,
  scenario: ScenarioId,
  cluster: string,
  hosts: string[],
  platform: Platform,
  count: number,
  prefix: string,
): Promise<{ cell: Cell; sites: Site[] }> {
  const group = clusterGroupAllAtOnce(cluster, serversOf(sf, hosts));
  const db = serversOf(sf, [DB_HOST_NAME])[0] as Server;
  const runs: RunOutcome[] = [];
  const sites: Site[] = [];
  const notes: string[] = [];
  let error: string | undefined;
  const started = performance.now();
  for (let i = 1; i <= count; i++) {
    const site = wordpressSite(`${prefix}${i}.${cluster}.bench.test`, platform.name, DB_HOST_NAME);
    try {
      const outcome = await guarded(sf, () => installSiteOnCluster(sf.ctx, group, platform, site, db));
      runs.push(outcome);
      sites.push(site);
      notes.push(...outcome.notes.filter((n) => !notes.includes(n)));
      if (i % 10 === 0 || i === count) log(`  ${i}/${count} installed (last ${outcome.seconds.toFixed(2)} s)`);
    } catch (e) {
      error = `site ${i} of ${count} (${site.domain}) failed: ${errorText(e)}`;
      log(`  ${error.slice(0, 600)}`);
      break;
    }
  }
  const totalSeconds = (performance.now() - started) / 1000;
  const summary = runs.length > 0 ? summarize(runs.map((r) => r.seconds)) : undefined;
  const breakdown = summary ? breakdownNearMedian(runs, summary.median) : undefined;
  const cell: Cell = {
    scenario,
    members: hosts.length,
    sites: count,
    contender: 'sitefleet',
    ...(summary ? { summary } : {}),
    ...(error === undefined ? { totalSeconds } : { error }),
    notes,
    ...(breakdown ? { breakdown } : {}),
    loadAverage: os.loadavg()[0] ?? 0,
  };
  return { cell, sites };
}

export async function installScenario(rt: Runtime): Promise<Cell[]> {
  const members = rt.plan.installMembers;
  log(`\n== InstallSiteOnCluster on ${members} members ==`);
  const sf = rt.sf;
  const failed = (reason: string): Cell[] => [
    { scenario: 'install-latency', members, contender: 'sitefleet', error: reason, notes: [] },
    {
      scenario: 'install-throughput',
      members,
      sites: rt.plan.inARow,
      contender: 'sitefleet',
      error: reason,
      notes: [],
    },
  ];
  if (!sf) return rt.plan.sitefleet ? failed(rt.sfError ?? 'sitefleet did not start') : [];
  sf.worker.enterSection('install');
  const hosts = rt.webHosts.slice(0, members);
  const cluster = `inst${members}`;
  let platform: Platform;
  try {
    platform = await sitePlatform(sf, cluster, hosts, rt.plan.source);
  } catch (error) {
    return failed(errorText(error));
  }
  const group = clusterGroupAllAtOnce(cluster, serversOf(sf, hosts));
  const db = serversOf(sf, [DB_HOST_NAME])[0] as Server;
  const latency = await measureRounds(
    `install ${members}`,
    [
      {
        name: 'sitefleet',
        trial: (round) => ({
          run: () =>
            guarded(sf, () =>
              installSiteOnCluster(
                sf.ctx,
                group,
                platform,
                wordpressSite(`lat${round}.${cluster}.bench.test`, platform.name, DB_HOST_NAME),
                db,
              ),
            ),
        }),
      },
    ],
    { ...rt.plan, log },
  );
  const cells = toCells('install-latency', members, latency);
  if (rt.plan.inARow > 0) {
    log(`  ${rt.plan.inARow} sites in a row on ${members} members:`);
    cells.push((await installInARow(sf, 'install-throughput', cluster, hosts, platform, rt.plan.inARow, 'row')).cell);
  }
  return cells;
}
