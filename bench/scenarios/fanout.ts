/** Scenario 1: full fan-out of a new platform to 2, 4 and 8 members (CreatePlatformOnCluster) and the baselines. */
import { platformRoot } from '../../domain/paths';
import type { Contender } from '../measure';
import { measureRounds } from '../measure';
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
import { clusterGroupAllAtOnce, createPlatformOnCluster, pathPlatform } from '../sitefleet';

export async function fanoutScenario(rt: Runtime): Promise<Cell[]> {
  const cells: Cell[] = [];
  rt.sf?.worker.enterSection('fanout');
  for (const size of rt.plan.fanoutSizes) {
    log(`\n== full fan-out of a new platform to ${size} members ==`);
    const hosts = rt.webHosts.slice(0, size);
    const contenders: Contender[] = [];
    const sf = rt.sf;
    if (sf) {
      const cluster = `fan${size}`;
      const group = clusterGroupAllAtOnce(cluster, serversOf(sf, hosts));
      contenders.push({
        name: 'sitefleet',
        trial: (round) => {
          const platform = pathPlatform(`${cluster}-r${round}`, cluster, rt.plan.source);
          return {
            run: () => guarded(sf, () => createPlatformOnCluster(sf.ctx, group, platform)),
            cleanup: () => removeOnHosts(rt.bed, hosts, platformRoot({ aegirRoot: '/var/aegir' }, platform.name)),
          };
        },
      });
    } else if (rt.plan.sitefleet) contenders.push(unavailable('sitefleet', rt.sfError ?? 'sitefleet did not start'));
    contenders.push(
      ...baselineContenders(rt, hosts, (b, round) => `/var/aegir/platforms/bl-${b}-${size}-r${round}`, false),
    );
    cells.push(...toCells('fanout', size, await measureRounds(`fan-out ${size}`, contenders, { ...rt.plan, log })));
  }
  return cells;
}
