/** Scenario 4: VerifyClusterNodes on 8 members with 1, 10 and 50 sites. */
import type { Platform } from '../../domain/model';
import { DB_HOST_NAME } from '../bed';
import { errorText, measureRounds } from '../measure';
import type { Cell } from '../report';
import { guarded, log, type Runtime, serversOf, toCells } from '../runtime';
import { clusterGroupAllAtOnce, verifyClusterNodes } from '../sitefleet';
import { installInARow, sitePlatform } from './install';

export async function verifyScenario(rt: Runtime): Promise<Cell[]> {
  const members = rt.plan.verifyMembers;
  const counts = [...rt.plan.verifySites].sort((a, b) => a - b);
  log(`\n== VerifyClusterNodes on ${members} members with ${counts.join(', ')} sites ==`);
  const sf = rt.sf;
  const failed = (reason: string): Cell[] =>
    counts.map((sites) => ({ scenario: 'verify', members, sites, contender: 'sitefleet', error: reason, notes: [] }));
  if (!sf) return rt.plan.sitefleet ? failed(rt.sfError ?? 'sitefleet did not start') : [];
  sf.worker.enterSection('verify');
  const hosts = rt.webHosts.slice(0, members);
  const cluster = `ver${members}`;
  let platform: Platform;
  try {
    platform = await sitePlatform(sf, cluster, hosts, rt.plan.source);
  } catch (error) {
    return failed(errorText(error));
  }
  const wanted = counts[counts.length - 1] ?? 0;
  log(`  set-up: ${wanted} sites in a row on ${members} members:`);
  const setup = await installInARow(sf, 'install-in-a-row-8', cluster, hosts, platform, wanted, 'site');
  const cells: Cell[] = [setup.cell];
  const group = clusterGroupAllAtOnce(cluster, serversOf(sf, hosts));
  const db = serversOf(sf, [DB_HOST_NAME]);
  for (const count of counts) {
    if (setup.sites.length < count) {
      cells.push(
        ...failed(`only ${setup.sites.length} of ${count} sites could be installed: ${setup.cell.error ?? ''}`).filter(
          (c) => c.sites === count,
        ),
      );
      continue;
    }
    const sites = setup.sites.slice(0, count);
    const measured = await measureRounds(
      `verify ${members}/${count} sites`,
      [
        {
          name: 'sitefleet',
          trial: () => ({ run: () => guarded(sf, () => verifyClusterNodes(sf.ctx, group, [platform], sites, db)) }),
        },
      ],
      { ...rt.plan, log },
    );
    cells.push(...toCells('verify', members, measured, count));
  }
  return cells;
}
