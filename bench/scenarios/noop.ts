/** Scenario 2: a no-op ResyncCluster (nothing changed) on 2, 4 and 8 members, and the baselines' no-op copies. */
import { platformRoot } from '../../domain/paths';
import { rsyncParallel } from '../baselines';
import { type Contender, errorText, measureRounds, timed } from '../measure';
import type { Cell } from '../report';
import {
  baselineContenders,
  guarded,
  log,
  removeOnHosts,
  type Runtime,
  serversOf,
  toCells,
  unavailable,
} from '../runtime';
import { clusterGroupAllAtOnce, createPlatformOnCluster, pathPlatform, resyncCluster } from '../sitefleet';

export async function noopScenario(rt: Runtime): Promise<Cell[]> {
  const cells: Cell[] = [];
  rt.sf?.worker.enterSection('noop-resync');
  for (const size of rt.plan.fanoutSizes) {
    log(`\n== no-op resync of ${size} members ==`);
    const hosts = rt.webHosts.slice(0, size);
    const contenders: Contender[] = [];
    const sf = rt.sf;
    if (sf) {
      const cluster = `noop${size}`;
      const group = clusterGroupAllAtOnce(cluster, serversOf(sf, hosts));
      const platform = pathPlatform(cluster, cluster, rt.plan.source);
      let setupError: string | undefined;
      try {
        const created = await guarded(sf, () => createPlatformOnCluster(sf.ctx, group, platform));
        log(
          `  set-up: platform ${platform.name} created on ${size} members by sitefleet in ${created.seconds.toFixed(2)} s`,
        );
      } catch (error) {
        setupError = `set-up (CreatePlatformOnCluster) failed: ${errorText(error)}`;
        log(`  ${setupError}`);
      }
      contenders.push(
        setupError
          ? unavailable('sitefleet', setupError)
          : {
              name: 'sitefleet',
              trial: () => ({ run: () => guarded(sf, () => resyncCluster(sf.ctx, group, [platform], [], [])) }),
            },
      );
    } else if (rt.plan.sitefleet) contenders.push(unavailable('sitefleet', rt.sfError ?? 'sitefleet did not start'));
    const dest = `/var/aegir/platforms/bl-noop-${size}`;
    if (rt.plan.baselines.length > 0) {
      const setup = await timed(() => rsyncParallel(rt.baseline, hosts, dest));
      log(`  set-up: ${dest} copied to ${size} members by parallel rsync in ${setup.seconds.toFixed(2)} s`);
    }
    contenders.push(...baselineContenders(rt, hosts, () => dest, true));
    cells.push(...toCells('noop-resync', size, await measureRounds(`no-op ${size}`, contenders, { ...rt.plan, log })));
    // The trees are not needed any more; on tmpfs they take memory.
    for (const dir of [dest, platformRoot({ aegirRoot: '/var/aegir' }, `noop${size}`)]) {
      await removeOnHosts(rt.bed, hosts, dir).catch((error: unknown) =>
        log(`  clean-up of ${dir}: ${errorText(error)}`),
      );
    }
  }
  return cells;
}
