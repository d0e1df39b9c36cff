/**
 * Workflows of the fast layer: the real InstallSiteOnCluster, and two small workflows that drive the real Saga and
 * allBounded against the mocked activities of fast.test.ts.
 */
import { proxyActivities } from '@temporalio/workflow';
import { allBounded } from '../../common/settle';
import { Saga } from '../../workflows/saga';

export { InstallSiteOnCluster } from '../../workflows';

export interface FastActivities {
  /** Records that step `name` started and ended (with the given delay between). */
  step(name: string, delayMs: number): Promise<string>;
  /** Fails with `message`; not retried. */
  fail(message: string): Promise<never>;
}

const acts = proxyActivities<FastActivities>({
  startToCloseTimeout: '30 seconds',
  retry: { maximumAttempts: 1 },
});

/** Registers undos in the order given, then compensates; returns what compensation reported as failed. */
export async function SagaOrder(undos: { name: string; on?: string; delayMs: number }[]): Promise<string[]> {
  const saga = new Saga();
  for (const u of undos) {
    saga.add(u.name, () => acts.step(u.name, u.delayMs), u.on === undefined ? {} : { on: u.on });
  }
  return saga.compensate();
}

/** allBounded over `count` items, at most `limit` at a time; item `failAt` (if any) fails. */
export async function Bounded(count: number, limit: number, failAt: number | null): Promise<string[]> {
  const items = Array.from({ length: count }, (_, i) => i);
  return allBounded(items, limit, (i) => (i === failAt ? acts.fail(`item ${i} failed`) : acts.step(`item ${i}`, 200)));
}
