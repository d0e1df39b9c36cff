/** Scenario 5 (issue 10): the relay on shaped links; the measuring itself is bench/relay.ts. */
import { applyLinkShaping, clearLinkShaping } from '../../testbed/shaping';
import { relayScenario } from '../relay';
import type { BenchResults } from '../report';
import { log, type Runtime } from '../runtime';
import { readServers } from '../sitefleet';

/**
 * Issue 10's scenario in the same run: the bed's links shaped (each host both ways, and the controller's egress),
 * a new platform to 4 and 8 members by sitefleet's relay and by the baselines (bench/relay.ts), then the shaping
 * removed again.
 */
export async function relayOnShapedLinks(rt: Runtime): Promise<NonNullable<BenchResults['relay']>> {
  const { plan, bed } = rt;
  const mbit = /^(\d+(?:\.\d+)?)(k|m|g)bit$/i.exec(plan.relayRate);
  if (!mbit) throw new Error(`--relay-rate ${plan.relayRate}: give it in kbit, mbit or gbit`);
  const unit = (mbit[2] as string).toLowerCase();
  const uplinkMbit = Number(mbit[1]) * (unit === 'k' ? 0.001 : unit === 'g' ? 1000 : 1);
  rt.sf?.worker.enterSection('relay');
  await applyLinkShaping(bed.plan, { rate: plan.relayRate, controllerRate: plan.relayRate });
  try {
    const contenders = [
      ...(plan.sitefleet ? (['sitefleet-relay', 'sitefleet-relay-plain'] as const) : []),
      ...(['rsync-seq', 'rsync-par', 'ansible'] as const).filter((b) => plan.baselines.includes(b)),
    ];
    const rows = await relayScenario(
      {
        bed,
        servers: rt.sf?.servers ?? (await readServers(bed.paths.inventoryFile)),
        ...(rt.sf ? { sitefleet: rt.sf.ctx } : {}),
        baseline: rt.baseline,
        masters: rt.masters,
        ...(rt.ansible ? { ansible: rt.ansible } : {}),
        log,
      },
      {
        runs: plan.relayRuns,
        warmup: plan.warmup,
        sizes: plan.relaySizes,
        rate: plan.relayRate,
        uplinkMbit,
        contenders: [...contenders],
        source: plan.source,
        baseDir: '',
        outDir: plan.outDir,
      },
    );
    return { rate: plan.relayRate, sizes: plan.relaySizes, rows };
  } finally {
    await clearLinkShaping(bed.plan);
  }
}
