/**
 * Links with limited bandwidth: a token bucket (tc tbf) on each host's link, both directions, and on the
 * controller's side of the bridge.
 *
 * - toward a host: tbf on the root-namespace end of its veth (what the bridge sends into the veth);
 * - from a host: tbf on `eth0` inside the host's netns;
 * - the controller's total egress: tbf on the bridge device itself. Traffic between hosts is bridged and never
 *   passes the bridge's own qdisc, so it limits only what the controller sends, however many hosts it sends to.
 *
 * With `rate 200mbit burst 256kb latency 50ms` one ssh stream carries ~183 Mbit/s of payload (TESTBED-NOTES.md).
 * Every qdisc lives on a link the bed owns: `down` deletes the links and the qdiscs go with them. What a shaping
 * is and how it is checked is testbed/link-shaping.ts (the bed plan needs it without the tc side).
 */
import { runCommand } from './command';
import type { BedPlan } from './plan';
import { checkLinkShaping, type LinkShaping } from './link-shaping';

export { checkLinkShaping, isShaped, type LinkShaping } from './link-shaping';

function tbf(dev: string, rate: string, burst: string, latency: string): string {
  return `qdisc replace dev ${dev} root tbf rate ${rate} burst ${burst} latency ${latency}`;
}

/**
 * Puts the shaping on the bed's links (replacing any earlier shaping; links not limited by `shaping` get their
 * default qdisc back). Names come from planBed ([a-z0-9-] only) and values are checked, so the batch lines are safe.
 */
export async function applyLinkShaping(plan: BedPlan, shaping: LinkShaping): Promise<void> {
  const s = checkLinkShaping(shaping);
  await clearLinkShaping(plan);
  const root: string[] = [];
  if (s.controllerRate !== undefined) root.push(tbf(plan.bridge, s.controllerRate, s.burst, s.latency));
  if (s.rate !== undefined) root.push(...plan.hosts.map((h) => tbf(h.veth, s.rate as string, s.burst, s.latency)));
  if (root.length > 0) await runCommand(['tc', '-batch', '-'], { input: `${root.join('\n')}\n` });
  if (s.rate !== undefined) {
    const rate = s.rate;
    await Promise.all(
      plan.hosts.map((h) =>
        runCommand(['tc', '-n', h.netns, '-batch', '-'], { input: `${tbf('eth0', rate, s.burst, s.latency)}\n` }),
      ),
    );
  }
}

/** Removes every root qdisc the shaping put on the bed's links that still exist. Idempotent. */
export async function clearLinkShaping(plan: BedPlan): Promise<void> {
  const del = (dev: string): string => `qdisc del dev ${dev} root`;
  // -force: a link without a root qdisc (or gone already) is not an error of the clean-up.
  await runCommand(['tc', '-force', '-batch', '-'], {
    input: `${[plan.bridge, ...plan.hosts.map((h) => h.veth)].map(del).join('\n')}\n`,
    check: false,
  });
  await Promise.all(
    plan.hosts.map((h) =>
      runCommand(['tc', '-n', h.netns, '-force', '-batch', '-'], { input: `${del('eth0')}\n`, check: false }),
    ),
  );
}

export interface LinkQdisc {
  /** `bridge`, a host name, or `HOST:eth0` for the host's own end. */
  link: string;
  dev: string;
  kind: string;
  /** tbf rate as tc prints it, e.g. `200Mbit`. */
  rate?: string;
}

interface TcQdisc {
  kind: string;
  handle?: string;
  root?: boolean;
  options?: { rate?: number };
}

async function rootQdisc(dev: string, netns?: string): Promise<TcQdisc | undefined> {
  const argv = ['tc', ...(netns ? ['-n', netns] : []), '-j', 'qdisc', 'show', 'dev', dev, 'root'];
  const result = await runCommand(argv, { check: false });
  if (result.code !== 0 || !result.stdout.trim()) return undefined;
  return (JSON.parse(result.stdout) as TcQdisc[]).find((q) => q.root) ?? undefined;
}

/** The root qdisc of every bed link (what `status` shows and the tests check). */
export async function readLinkShaping(plan: BedPlan): Promise<LinkQdisc[]> {
  const describe = (link: string, dev: string, q: TcQdisc | undefined): LinkQdisc => ({
    link,
    dev,
    kind: q?.kind ?? 'none',
    ...(q?.kind === 'tbf' && q.options?.rate !== undefined ? { rate: formatRate(q.options.rate) } : {}),
  });
  const rows: LinkQdisc[] = [describe('bridge', plan.bridge, await rootQdisc(plan.bridge))];
  for (const host of plan.hosts) {
    rows.push(describe(host.name, host.veth, await rootQdisc(host.veth)));
    rows.push(describe(`${host.name}:eth0`, 'eth0', await rootQdisc('eth0', host.netns)));
  }
  return rows;
}

/** tc's JSON gives tbf rates in bytes per second. */
function formatRate(bytesPerSecond: number): string {
  const bits = bytesPerSecond * 8;
  if (bits >= 1e9 && bits % 1e9 === 0) return `${bits / 1e9}Gbit`;
  if (bits >= 1e6) return `${+(bits / 1e6).toFixed(3)}Mbit`;
  return `${+(bits / 1e3).toFixed(3)}Kbit`;
}
