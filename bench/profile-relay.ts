/**
 * Where a relay's time goes, outside Temporal: `npx tsx bench/profile-relay.ts [members] [rate]`.
 * Brings up a shaped bench bed and runs relayPlatform (a new platform each run, 1 warm-up + 3), printing the
 * activity's own timings and each member's timeline.
 */
import { readdir, readFile } from 'node:fs/promises';
import { relayPlatform } from '../activities/relay/relay';
import { removePlatform } from '../activities/platform';
import { closeAllConnections } from '../activities/transport/ssh';
import type { Platform } from '../domain/model';
import { applyLinkShaping } from '../testbed/shaping';
import { defaultBenchBaseDir, startBenchBed, webHostName } from './bed';
import { readServers } from './sitefleet';

/** CPU time (user + nice + system + irq + softirq) the whole machine has spent since boot, in seconds. */
async function busyCpuSeconds(): Promise<number> {
  const line = (await readFile('/proc/stat', 'utf8')).split('\n')[0] as string;
  const [, user, nice, system, , , irq, softirq] = line.trim().split(/\s+/).map(Number);
  return ((user ?? 0) + (nice ?? 0) + (system ?? 0) + (irq ?? 0) + (softirq ?? 0)) / 100;
}

/** utime+stime+cutime+cstime (seconds) of every process, with its parent. */
async function processTimes(): Promise<Map<number, { ppid: number; cpu: number; own: number }>> {
  const out = new Map<number, { ppid: number; cpu: number; own: number }>();
  for (const entry of await readdir('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const stat = await readFile(`/proc/${entry}/stat`, 'utf8').catch(() => '');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    if (fields.length < 16) continue;
    const n = (i: number): number => Number(fields[i - 3]);
    out.set(Number(entry), { ppid: n(4), cpu: (n(14) + n(15) + n(16) + n(17)) / 100, own: (n(14) + n(15)) / 100 });
  }
  return out;
}

/** CPU seconds of each root process's tree (live processes plus what their exited children left in cutime). */
async function treeCpu(roots: Record<string, number>): Promise<Record<string, number>> {
  const procs = await processTimes();
  const children = new Map<number, number[]>();
  for (const [pid, p] of procs) children.set(p.ppid, [...(children.get(p.ppid) ?? []), pid]);
  const result: Record<string, number> = {};
  for (const [name, root] of Object.entries(roots)) {
    let sum = 0;
    const stack = [root];
    while (stack.length > 0) {
      const pid = stack.pop() as number;
      sum += procs.get(pid)?.cpu ?? 0;
      stack.push(...(children.get(pid) ?? []));
    }
    result[name] = sum;
  }
  return result;
}

async function main(): Promise<void> {
  const members = Number(process.argv[2] ?? 8);
  const rate = process.argv[3] ?? '200mbit';
  const baseDir = await defaultBenchBaseDir();
  const bed = await startBenchBed({ webHosts: members, baseDir });
  try {
    await applyLinkShaping(bed.plan, { rate, controllerRate: rate });
    await Promise.all(
      Array.from({ length: members }, (_, i) =>
        bed.exec(webHostName(i + 1), ['install', '-d', '-o', 'aegir', '-g', 'aegir', '/var/aegir/platforms']),
      ),
    );
    process.env.SITEFLEET_SSH_KEY = bed.paths.clientKey;
    const all = await readServers(bed.paths.inventoryFile);
    const servers = Array.from({ length: members }, (_, i) => all.get(webHostName(i + 1))!);
    for (let run = 0; run < 4; run++) {
      const platform: Platform = {
        name: `prof${run}`,
        target: { kind: 'cluster', name: 'c' },
        source: { type: 'path', path: '/usr/share/wordpress' },
        profile: 'wordpress',
      };
      const roots: Record<string, number> = { controller: process.pid };
      for (const host of bed.plan.hosts) roots[host.name] = await bed.initPidOf(host);
      const tree0 = await treeCpu(roots);
      const cpu0 = await busyCpuSeconds();
      const t = performance.now();
      // Sample w4's processes every 20 ms: CPU by command name (a process's last <20 ms before exit are missed).
      const w4 = roots.w4 as number;
      const seen = new Map<number, { comm: string; cpu: number; base: number }>();
      let sampling = true;
      const sampler = (async () => {
        while (sampling) {
          const procs = await processTimes();
          const children = new Map<number, number[]>();
          for (const [pid, p] of procs) children.set(p.ppid, [...(children.get(p.ppid) ?? []), pid]);
          const stack = [w4];
          while (stack.length > 0) {
            const pid = stack.pop() as number;
            const p = procs.get(pid);
            if (p) {
              const comm = (await readFile(`/proc/${pid}/comm`, 'utf8').catch(() => '?')).trim();
              const own = p.own;
              const first = seen.get(pid);
              seen.set(pid, { comm, cpu: own, base: first?.base ?? own });
            }
            stack.push(...(children.get(pid) ?? []));
          }
          await new Promise((r) => setTimeout(r, 20));
        }
      })();
      const r = await relayPlatform({ platform, servers, operation: `prof-${run}` });
      sampling = false;
      await sampler;
      const byComm = new Map<string, number>();
      for (const v of seen.values()) byComm.set(v.comm, (byComm.get(v.comm) ?? 0) + v.cpu - v.base);
      console.log(
        '  w4 by command (own time; first seen at 0): ' +
          [...byComm.entries()]
            .sort((a, b) => b[1] - a[1])
            .slice(0, 12)
            .map(([c, t]) => `${c}=${t.toFixed(2)}`)
            .join(' '),
      );
      const total = performance.now() - t;
      const cpu = (await busyCpuSeconds()) - cpu0;
      const tree1 = await treeCpu(roots);
      console.log(
        '  CPU s by tree: ' +
          Object.keys(roots)
            .map((k) => `${k}=${((tree1[k] ?? 0) - (tree0[k] ?? 0)).toFixed(2)}`)
            .join(' '),
      );
      console.log(
        `run ${run}: ${total.toFixed(0)} ms, machine CPU busy ${cpu.toFixed(2)} s, timings ${JSON.stringify(r.timings)}, streamed ${r.streamedBytes}`,
      );
      for (const m of r.members)
        console.log(`  ${m.server} ${m.switched ? 'ok' : m.error} ${JSON.stringify(m.timeline)}`);
      await Promise.all(servers.map((server) => removePlatform({ server, platform })));
    }
  } finally {
    await closeAllConnections();
    await bed.down().catch((e: unknown) => console.error(e));
  }
}

void main();
