/**
 * The bed's network: one Linux bridge in the root namespace holding the subnet's first address, and
 * per host a network namespace joined to the bridge by a veth pair. No NAT, no forwarding, no default
 * route in any host: traffic stays between the controller and the bed's hosts.
 */
import { promises as fs } from 'node:fs';
import { canConnect } from '../common/tcp';
import { runCommand } from './command';
import { type BedPlan, netnsPrefix, parseSubnet, subnetsOverlap } from './plan';

interface IpRoute {
  dst?: string;
  dev?: string;
  type?: string;
}

/** Refuses a subnet that overlaps any route already on this machine (other beds included). */
export async function assertSubnetUnused(subnet: string): Promise<void> {
  const wanted = parseSubnet(subnet);
  const { stdout } = await runCommand(['ip', '-4', '-j', 'route', 'show', 'table', 'all']);
  const routes = JSON.parse(stdout || '[]') as IpRoute[];
  for (const route of routes) {
    if (!route.dst || route.dst === 'default') continue;
    const dst = route.dst.includes('/') ? route.dst : `${route.dst}/32`;
    let routed;
    try {
      routed = parseSubnet(dst);
    } catch {
      continue;
    }
    if (subnetsOverlap(wanted, routed)) {
      throw new Error(
        `subnet ${subnet} overlaps ${route.dst}${route.dev ? ` on ${route.dev}` : ''}, already routed on this machine; ` +
          'choose another with --subnet (or run `down` for the bed that uses it)',
      );
    }
  }
}

export async function linkExists(name: string): Promise<boolean> {
  const result = await runCommand(['ip', '-j', 'link', 'show', 'dev', name], { check: false });
  return result.code === 0;
}

async function writeSysctl(key: string, value: string): Promise<void> {
  await fs.writeFile(`/proc/sys/${key}`, value);
}

/**
 * Creates the bridge, every host's netns and veth, and the hosts' addresses. A VM host gets a tap
 * on the bridge instead (under the same name); its guest sets its own address at boot.
 */
export async function createBedNetwork(plan: BedPlan): Promise<void> {
  const root = [
    `link add ${plan.bridge} type bridge forward_delay 0 stp_state 0`,
    ...plan.hosts.flatMap((h) =>
      h.vm
        ? [`tuntap add dev ${h.veth} mode tap`, `link set ${h.veth} master ${plan.bridge} up`]
        : [
            `netns add ${h.netns}`,
            `link add ${h.veth} type veth peer name eth0 netns ${h.netns}`,
            `link set ${h.veth} master ${plan.bridge} up`,
          ],
    ),
  ];
  // Names and addresses in these batch lines come from planBed, which allows only [a-z0-9.-/].
  await runCommand(['ip', '-batch', '-'], { input: root.join('\n') + '\n' });
  // Before the bridge gets its address: it must never forward, and it carries no IPv6.
  await writeSysctl(`net/ipv4/conf/${plan.bridge}/forwarding`, '0');
  await writeSysctl(`net/ipv6/conf/${plan.bridge}/disable_ipv6`, '1').catch(() => {
    /* IPv6 is off on this machine altogether */
  });
  await runCommand(['ip', 'addr', 'add', `${plan.bridgeIp}/${plan.prefixLength}`, 'dev', plan.bridge]);
  await runCommand(['ip', 'link', 'set', plan.bridge, 'up']);
  await Promise.all(
    plan.hosts
      .filter((h) => !h.vm)
      .map((h) =>
        runCommand(['ip', '-n', h.netns, '-batch', '-'], {
          input: ['link set lo up', `addr add ${h.ip}/${plan.prefixLength} dev eth0`, 'link set eth0 up', ''].join(
            '\n',
          ),
        }),
      ),
  );
}

/** The bed's leftover namespaces, found by name: works without any record of what `up` made. */
export async function listBedNetns(bedName: string): Promise<string[]> {
  const result = await runCommand(['ip', '-j', 'netns', 'list'], { check: false });
  if (result.code !== 0 || !result.stdout.trim()) return [];
  const entries = JSON.parse(result.stdout) as { name: string }[];
  return entries.map((e) => e.name).filter((n) => n.startsWith(netnsPrefix(bedName)));
}

/** The bed's bridge and veths in the root namespace, found by name. */
export async function listBedLinks(bedName: string): Promise<string[]> {
  const { stdout } = await runCommand(['ip', '-j', 'link', 'show']);
  const links = JSON.parse(stdout || '[]') as { ifname: string }[];
  return links.map((l) => l.ifname).filter((n) => n === `sf-${bedName}` || n.startsWith(`sf-${bedName}-`));
}

/**
 * Deletes the bed's links and namespaces that exist, in one `ip -batch` (veths first: deleting
 * either end of a veth deletes both; then the bridge; then the namespaces), and throws if any
 * of them is still there afterwards. Returns what it removed.
 */
export async function deleteBedNetwork(
  bedName: string,
  links: ReadonlySet<string>,
  netns: ReadonlySet<string>,
): Promise<{ links: string[]; netns: string[] }> {
  const bridge = `sf-${bedName}`;
  const existingLinks = new Set(await listBedLinks(bedName));
  const existingNetns = new Set(await listBedNetns(bedName));
  const doomedLinks = [...links].filter((l) => existingLinks.has(l) && l !== bridge);
  if (links.has(bridge) && existingLinks.has(bridge)) doomedLinks.push(bridge);
  const doomedNetns = [...netns].filter((n) => existingNetns.has(n));
  const batch = [...doomedLinks.map((l) => `link del ${l}`), ...doomedNetns.map((n) => `netns del ${n}`)];
  if (batch.length > 0) {
    await runCommand(['ip', '-force', '-batch', '-'], { input: `${batch.join('\n')}\n`, check: false });
  }
  const leftLinks = (await listBedLinks(bedName)).filter((l) => links.has(l));
  const leftNetns = (await listBedNetns(bedName)).filter((n) => netns.has(n));
  if (leftLinks.length > 0 || leftNetns.length > 0) {
    throw new Error(`could not delete ${[...leftLinks, ...leftNetns].join(', ')}`);
  }
  return { links: doomedLinks, netns: doomedNetns };
}

/** PIDs of every process in a netns (our hosts' processes, and nothing else, live there). */
export async function netnsPids(netns: string): Promise<number[]> {
  const result = await runCommand(['ip', 'netns', 'pids', netns], { check: false });
  if (result.code !== 0) return [];
  return result.stdout
    .split('\n')
    .filter((l) => /^\d+$/.test(l.trim()))
    .map(Number);
}

export async function setLinkUp(link: string, up: boolean): Promise<void> {
  await runCommand(['ip', 'link', 'set', link, up ? 'up' : 'down']);
}

/**
 * The safety check before any traffic to hosts: the kernel must route each IP out of the bed's own
 * bridge, so that nothing reaches another network even if the bed's subnet was misconfigured.
 */
export async function assertRoutesViaBridge(ips: readonly string[], bridge: string): Promise<void> {
  if (ips.length === 0) return;
  const { stdout } = await runCommand(['ip', '-4', '-j', '-batch', '-'], {
    input: ips.map((ip) => `route get ${ip}\n`).join(''),
  });
  const answers = stdout.split('\n').filter((line) => line.trim().startsWith('['));
  ips.forEach((ip, i) => {
    const line = answers[i] ?? '[]';
    const dev = (JSON.parse(line) as IpRoute[])[0]?.dev;
    if (dev !== bridge) {
      throw new Error(
        `refusing to send traffic to ${ip}: it is routed via ${dev ?? 'nothing'}, not the bed's bridge ${bridge} ` +
          `(ip route get: ${line})`,
      );
    }
  });
}

export function assertRouteViaBridge(ip: string, bridge: string): Promise<void> {
  return assertRoutesViaBridge([ip], bridge);
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Waits until ip:port accepts (or, with `open: false`, refuses) TCP connections. Call after the route check. */
export async function waitForTcpPort(
  ip: string,
  port: number,
  { timeoutMs = 10_000, open = true }: { timeoutMs?: number; open?: boolean } = {},
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if ((await canConnect(ip, port, 500)) === open) return;
    if (Date.now() > deadline) {
      throw new Error(
        `${ip}:${port} still ${open ? 'refuses connections' : 'accepts connections'} after ${timeoutMs} ms`,
      );
    }
    await sleep(10);
  }
}

