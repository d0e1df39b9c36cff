/**
 * Where a no-op platform sync's time goes, outside Temporal: `npx tsx bench/profile-noop.ts [members]`.
 * Brings up a bench bed, pushes the WordPress tree once, then times (median of 7) the pieces of syncPlatform
 * on all members at once: rsync alone, the dispatcher writes alone, and the whole activity body.
 */
import { performance } from 'node:perf_hooks';
import { syncPlatform } from '../activities/platform';
import { ensureWordpressDispatcher } from '../activities/site-files';
import { rsyncToServer } from '../activities/transport/rsync';
import { closeAllConnections } from '../activities/transport/ssh';
import { platformRoot } from '../domain/paths';
import type { Platform } from '../domain/model';
import { downBed } from '../testbed';
import { defaultBenchBaseDir, startBenchBed, webHostName } from './bed';
import { readServers } from './sitefleet';

async function median(label: string, runs: number, fn: () => Promise<unknown>): Promise<void> {
  const times: number[] = [];
  for (let i = 0; i < runs; i++) {
    const t = performance.now();
    await fn();
    times.push(performance.now() - t);
  }
  times.sort((a, b) => a - b);
  console.log(
    `${label.padEnd(40)} median ${(times[Math.floor(runs / 2)] as number).toFixed(0)} ms  (min ${(times[0] as number).toFixed(0)})`,
  );
}

async function main(): Promise<void> {
  const members = Number(process.argv[2] ?? 8);
  const baseDir = await defaultBenchBaseDir();
  const bed = await startBenchBed({ webHosts: members, baseDir });
  try {
    process.env.SITEFLEET_SSH_KEY = bed.paths.clientKey;
    const all = await readServers(bed.paths.inventoryFile);
    const servers = Array.from({ length: members }, (_, i) => all.get(webHostName(i + 1))!);
    const platform: Platform = {
      name: 'prof',
      target: { kind: 'cluster', name: 'c' },
      source: { type: 'path', path: '/usr/share/wordpress' },
      profile: 'wordpress',
    };
    await Promise.all(servers.map((server) => syncPlatform({ server, platform })));
    await median('syncPlatform x N (whole activity body)', 7, () =>
      Promise.all(servers.map((server) => syncPlatform({ server, platform }))),
    );
    await median('rsync only x N', 7, () =>
      Promise.all(
        servers.map((server) =>
          rsyncToServer(server, {
            source: '/usr/share/wordpress',
            destination: platformRoot(server, 'prof'),
            chown: 'aegir:aegir',
            chmod: 'u+rwX,go+rX,go-w',
          }),
        ),
      ),
    );
    await median('dispatcher writes only x N', 7, () =>
      Promise.all(servers.map((server) => ensureWordpressDispatcher(server, platform))),
    );
    await median('syncPlatform x 1', 7, () => syncPlatform({ server: servers[0]!, platform }));
    await median('rsync only x 1', 7, () =>
      rsyncToServer(servers[0]!, { source: '/usr/share/wordpress', destination: platformRoot(servers[0]!, 'prof') }),
    );
  } finally {
    await closeAllConnections();
    await downBed(bed.name, baseDir).catch((e: unknown) => console.error(e));
  }
}

void main();
