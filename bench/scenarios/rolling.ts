/**
 * Scenario `rolling`: haproxy on the bed's lb host in front of a WordPress cluster of 3 and of 8 members, a load
 * client (8 at a time, keep-alive, WordPress's REST index) through it; failed requests (non-2xx and errors) and
 * p99 latency without an update, during a rolling update into new releases (ResyncCluster after a code change),
 * during the deployment of a broken release (which must stop at the first member and switch it back), during the
 * fixed release and during RollbackPlatform (every member back on its previous release). Printed, not part of the
 * targets.
 */
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Platform, Server, Site } from '../../domain/model';
import type { WebGroup } from '../../domain/operations';
import { loadDuring, type LoadResult } from '../load-client';
import { DB_HOST_NAME, LB_HOST_NAME } from '../bed';
import { errorText } from '../measure';
import type { Cell } from '../report';
import { guarded, log, type Runtime, serversOf } from '../runtime';
import { clusterGroupAllAtOnce } from '../sitefleet';
import { installInARow, sitePlatform } from './install';

export const ROLLING_SIZES = [3, 8];
const LOAD_CONCURRENCY = 8;
const IDLE_SECONDS = 10;

const line = (what: string, r: LoadResult): string =>
  `  ${what.padEnd(34)} ${String(r.requests).padStart(6)} requests  ${String(r.failed).padStart(3)} failed  ` +
  `p50 ${r.p50Ms.toFixed(1).padStart(7)} ms  p99 ${r.p99Ms.toFixed(1).padStart(7)} ms` +
  (r.examples.length > 0 ? `  (${r.examples.slice(0, 3).join('; ')})` : '');

export async function rollingScenario(rt: Runtime): Promise<Cell[]> {
  const sf = rt.sf;
  log(`\n== rolling update behind haproxy on ${ROLLING_SIZES.join(' and ')} members ==`);
  if (!sf) {
    log(`  skipped: ${rt.sfError ?? 'sitefleet did not start'}`);
    return [];
  }
  sf.worker.enterSection('rolling');
  for (const members of ROLLING_SIZES) {
    const source = mkdtempSync(join(tmpdir(), 'sitefleet-bench-rolling-'));
    try {
      cpSync(rt.plan.source, source, { recursive: true, verbatimSymlinks: true });
      await rollingOn(rt, members, source);
    } catch (error) {
      log(`  ${members} members: ${errorText(error).slice(0, 800)}`);
    } finally {
      rmSync(source, { recursive: true, force: true });
    }
  }
  return [];
}

async function rollingOn(rt: Runtime, members: number, source: string): Promise<void> {
  const sf = rt.sf!;
  const hosts = rt.webHosts.slice(0, members);
  const cluster = `roll${members}`;
  const platform: Platform = await sitePlatform(sf, cluster, hosts, source);
  const { sites, cell } = await installInARow(sf, 'install-in-a-row-8', cluster, hosts, platform, 1, 'roll');
  if (sites.length === 0) throw new Error(`set-up: the site could not be installed: ${cell.error ?? ''}`);
  const site = sites[0] as Site;
  const [lbHost] = serversOf(sf, [LB_HOST_NAME]);
  const port = 8000 + members;
  const lb: Server = { ...(lbHost as Server), lb: { type: 'haproxy', port, configFile: '/etc/haproxy/haproxy.cfg' } };
  const group: WebGroup = {
    ...clusterGroupAllAtOnce(cluster, serversOf(sf, hosts)),
    loadBalancer: lb,
    loadBalancerRoutes: { platforms: [platform], sites },
  };
  const run = (type: string, id: string, input: unknown) =>
    guarded(sf, () =>
      sf.ctx.client.workflow.execute(type, {
        taskQueue: sf.ctx.taskQueue,
        workflowId: `bench-${id}-${Date.now()}`,
        args: [input],
      }),
    );
  await run('ConfigureClusterLoadBalancer', `lb-${cluster}`, { group, platforms: [platform], sites });
  const underLoad = (during: () => Promise<unknown>): Promise<LoadResult> =>
    loadDuring(
      {
        host: rt.bed.ip(LB_HOST_NAME),
        port,
        path: '/?rest_route=/',
        headers: { Host: site.domain },
        concurrency: LOAD_CONCURRENCY,
      },
      during,
    );
  const resync = () =>
    run('ResyncCluster', `resync-${cluster}`, {
      group,
      platforms: [platform],
      sites,
      dbServers: serversOf(sf, [DB_HOST_NAME]),
    });
  log(`  ${members} members, load: ${LOAD_CONCURRENCY} at a time through haproxy (2 cores shared with the bed):`);
  const idle = await underLoad(() => new Promise((r) => setTimeout(r, IDLE_SECONDS * 1000)));
  log(line('no update', idle));
  writeFileSync(join(source, 'sitefleet-release.txt'), 'release 2\n');
  const rolling = await underLoad(resync);
  log(line('rolling update (ResyncCluster)', rolling));
  const index = join(source, 'index.php');
  const good = readFileSync(index, 'utf8');
  writeFileSync(index, "<?php http_response_code(500); echo 'broken release';\n");
  let stopped = '';
  const broken = await underLoad(() =>
    run('CreatePlatformOnCluster', `deploy-${cluster}`, { platform, group }).then(
      () => (stopped = 'NOT stopped: the broken release went out'),
      (err: unknown) => (stopped = /rolling update stopped at (\S+):/.exec(errorText(err))?.[1] ?? errorText(err)),
    ),
  );
  log(line(`broken release (stopped at ${stopped.slice(0, 40)})`, broken));
  writeFileSync(index, good);
  const fixed = await underLoad(resync);
  log(line('fixed release (ResyncCluster)', fixed));
  const rolledBack = await underLoad(() => run('RollbackPlatform', `rollback-${cluster}`, { platform, group }));
  log(line('rollback (RollbackPlatform)', rolledBack));
}
