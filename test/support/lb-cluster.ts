/**
 * A cluster behind an haproxy host on the test bed, seen from outside: which members answer through the load
 * balancer, haproxy's own view of them (its admin socket), load through it while a workflow runs, and each member's
 * platform link and releases. Every answer comes from the real haproxy or the real member.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Platform, Server, Site } from '../../domain/model';
import type { WebGroup } from '../../domain/operations';
import { platformRoot, releasesDir } from '../../domain/paths';
import { inspectLoadBalancer } from '../../activities/load-balancer';
import { loadDuring, type LoadResult } from '../../bench/load-client';
import { clusterGroup, type Fleet } from './fleet';

export interface LbClusterOptions {
  fleet: () => Fleet;
  /** The bed host with the `lb` role. */
  lbHost: string;
  port: number;
  cluster: string;
  platform: Platform;
  /** The site the helpers request (through the LB and on members). */
  site: Site;
}

export function lbCluster({ fleet, lbHost, port, cluster, platform, site }: LbClusterOptions) {
  const lb = (): Server => ({
    ...fleet().server(lbHost),
    lb: { type: 'haproxy', port, configFile: '/etc/haproxy/haproxy.cfg' },
  });
  const group = (members: string[], sites = [site]): WebGroup =>
    clusterGroup(
      cluster,
      members.map((n) => fleet().server(n)),
      { loadBalancer: lb(), loadBalancerRoutes: { platforms: [platform], sites } },
    );
  /** Which members answer the site through the load balancer, over `n` requests; and every status seen. */
  const throughLb = async (n: number) => {
    const served = new Set<string>();
    const statuses = new Set<number>();
    for (let i = 0; i < n; i++) {
      const res = await fleet().bed.httpGet(lbHost, '/sitefleet-health.php', { port, headers: { Host: site.domain } });
      statuses.add(res.status);
      const backend = res.headers['x-sitefleet-backend'];
      if (typeof backend === 'string') served.add(backend);
    }
    return { served: [...served].sort(), statuses: [...statuses].sort() };
  };
  const lbView = async () => inspectLoadBalancer({ lb: lb(), cluster });
  /** The LB's view once haproxy's health checks have found every member up (or 20 s have passed). */
  const settledView = async () => {
    const deadline = Date.now() + 20_000;
    let view = await lbView();
    while (view.some((s) => s.status !== 'UP') && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 500));
      view = await lbView();
    }
    return view.map((s) => `${s.server} ${s.status}`);
  };
  /** The load a test puts through the load balancer while it runs `during`: WordPress's REST index, 4 at a time. */
  const underLoad = (during: () => Promise<unknown>): Promise<LoadResult> =>
    loadDuring(
      { host: fleet().bed.ip(lbHost), port, path: '/?rest_route=/', headers: { Host: site.domain }, concurrency: 4 },
      during,
    );
  /** The release marker file that a member serves for the site (the tests write it into the platform source). */
  const release = async (host: string) =>
    (await fleet().bed.httpGet(host, '/sitefleet-release.txt', { headers: { Host: site.domain } })).body.trim();
  /** Where the member's platform root links to (a release id; '' when it is a directory) and its releases. */
  const releasesOn = async (host: string) => {
    const server = fleet().server(host);
    const r = await fleet().bed.exec(host, [
      'sh',
      '-c',
      'readlink "$1" | sed "s|.*/||"; echo ---; ls "$2" 2>/dev/null || true',
      'releases',
      platformRoot(server, platform.name),
      releasesDir(server, platform.name),
    ]);
    const [current = '', list = ''] = r.stdout.split('---\n');
    return { current: current.trim(), releases: list.split('\n').filter(Boolean) };
  };
  /**
   * Makes the platform source (`dir`) a release marked `label` whose index.php answers 500 on `host` only (so that
   * the members before it are done first). Returns the good index.php, to write back.
   */
  const breakReleaseOn = async (dir: string, host: string, label: string): Promise<string> => {
    const index = join(dir, 'index.php');
    const good = readFileSync(index, 'utf8');
    const hostname = (await fleet().bed.exec(host, ['hostname'])).stdout.trim();
    writeFileSync(
      index,
      `<?php if (gethostname() === ${JSON.stringify(hostname)}) { http_response_code(500); echo 'broken release'; exit; } ?>` +
        good,
    );
    writeFileSync(join(dir, 'sitefleet-release.txt'), `${label}\n`);
    return good;
  };
  return { lb, group, throughLb, lbView, settledView, underLoad, release, releasesOn, breakReleaseOn };
}
