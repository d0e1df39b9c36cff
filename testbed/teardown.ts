/**
 * `down`: removes every namespace, veth, bridge, process and file of a bed. It works from the
 * recorded state when there is one and from the bed's naming scheme when there is not, so it
 * also cleans up after an `up` that failed halfway, and running it twice is harmless.
 */
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { killHost, isProcessInNetns, waitForProcessExit } from './host';
import { deleteBedNetwork, listBedLinks, listBedNetns, netnsPids } from './network';
import { bedPaths, bridgeName, defaultBaseDir } from './plan';
import { clearLinkShaping } from './shaping';
import { readState } from './state';
import { releaseSubnet } from './claims';
import { findBedQemuPids, killVm } from './vm/guest';

export interface DownReport {
  name: string;
  killedProcesses: number;
  removedNetns: string[];
  removedLinks: string[];
  removedDir: boolean;
}

/** Kills what is left in a netns: only the bed's own host processes live there. */
async function killNetnsProcesses(netns: string): Promise<number> {
  let killed = 0;
  for (let round = 0; round < 5; round++) {
    const pids = (await netnsPids(netns)).filter((pid) => pid !== process.pid);
    if (pids.length === 0) return killed;
    for (const pid of pids) {
      // Re-checked right before the kill: the PID must still belong to this netns.
      if (!(await isProcessInNetns(pid, netns))) continue;
      try {
        process.kill(pid, 'SIGKILL');
        killed++;
      } catch {
        /* already gone */
      }
    }
    await Promise.all(pids.map((pid) => waitForProcessExit(pid, 2000)));
  }
  const left = await netnsPids(netns);
  if (left.length > 0) throw new Error(`processes ${left.join(', ')} in netns ${netns} survived SIGKILL`);
  return killed;
}

export async function downBed(name: string, baseDir: string = defaultBaseDir()): Promise<DownReport> {
  const paths = bedPaths(name, baseDir);
  const state = await readState(paths).catch(() => undefined);
  const report: DownReport = { name, killedProcesses: 0, removedNetns: [], removedLinks: [], removedDir: false };
  const errors: Error[] = [];
  const attempt = async (what: string, fn: () => Promise<void>): Promise<void> => {
    try {
      await fn();
    } catch (error) {
      errors.push(new Error(`${what}: ${(error as Error).message}`));
    }
  };

  // 1. Processes: each recorded init (which takes its whole PID namespace with it), then anything left.
  await Promise.all(
    (state?.plan.hosts ?? []).map((host) =>
      attempt(`stopping host ${host.name}`, () =>
        host.vm ? killVm(host, state?.hosts[host.name]?.qemuPid) : killHost(host, state?.hosts[host.name]?.initPid),
      ),
    ),
  );
  // VM hosts whose QEMU PID was never recorded (a killed `up`): found by their disk under this bed's dir.
  await attempt('stopping leftover QEMU processes', async () => {
    for (const pid of await findBedQemuPids(paths.hostsDir)) {
      try {
        process.kill(pid, 'SIGKILL');
        report.killedProcesses++;
      } catch {
        /* already gone */
      }
      if (!(await waitForProcessExit(pid, 10_000))) throw new Error(`QEMU ${pid} survived SIGKILL`);
    }
  });
  const netnsNames = new Set([...(state?.plan.hosts.map((h) => h.netns) ?? []), ...(await listBedNetns(name))]);
  await Promise.all(
    [...netnsNames].map((netns) =>
      attempt(`killing processes in ${netns}`, async () => {
        report.killedProcesses += await killNetnsProcesses(netns);
      }),
    ),
  );

  // 2. Link shaping (deleting the links removes their qdiscs too; this also covers links that refuse to go),
  //    then links and namespaces (their /run/netns bind mounts go with them).
  //    Best effort: a qdisc that stays is deleted with its link, which is checked below.
  if (state) await clearLinkShaping(state.plan).catch(() => undefined);
  const links = new Set([
    ...(state?.plan.hosts.map((h) => h.veth) ?? []),
    ...(await listBedLinks(name)),
    state?.plan.bridge ?? bridgeName(name),
  ]);
  await attempt('deleting the network', async () => {
    const removed = await deleteBedNetwork(name, links, netnsNames);
    report.removedLinks = removed.links;
    report.removedNetns = removed.netns;
  });

  // 3. Files: the bed dir, and its claim on the subnet. Host mounts lived in the hosts' own mount
  //    namespaces and ended with their processes.
  if (errors.length === 0) {
    if (state) await attempt('releasing the subnet', () => releaseSubnet(baseDir, state.plan.subnet, name));
    await attempt(`removing ${paths.dir}`, async () => {
      if (path.dirname(paths.dir) !== path.resolve(baseDir))
        throw new Error('refusing to remove a dir outside the base dir');
      const existed = await fs.stat(paths.dir).then(
        () => true,
        () => false,
      );
      await fs.rm(paths.dir, { recursive: true, force: true });
      report.removedDir = existed;
    });
  }
  if (errors.length > 0) {
    throw new AggregateError(
      errors,
      `down of bed ${name} is incomplete:\n${errors.map((e) => `  - ${e.message}`).join('\n')}`,
    );
  }
  return report;
}
