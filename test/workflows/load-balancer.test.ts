/**
 * End to end on test hosts: haproxy on an lb host fronts a WordPress cluster and follows every change — the site's
 * install, a member added, the site disabled and enabled, a member removed — each time with a config that passed
 * `haproxy -c` and a graceful reload. Every assertion asks the real haproxy (through its port or its admin socket).
 * Under load through it: a rolling update into new release directories, a release broken on the 2nd member (it and
 * the 1st switch back) and RollbackPlatform, each with 0 failed requests.
 */
import assert from 'node:assert/strict';
import { cpSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { workflowIds } from '../../domain/operations';
import { setLoadBalancerMember } from '../../activities/load-balancer';
import { clusterGroup, useFleet } from '../support/fleet';
import { lbCluster } from '../support/lb-cluster';
import type { ResyncReport, VerifyReport } from '../../workflows/verify';
import type { RollbackPlatformResult } from '../../workflows/rollback';
import { WORDPRESS_SOURCE, wordpressPlatform, wordpressSite } from '../support/wordpress';
import { siteDir } from '../../domain/paths';
import { ADOPTED_RELEASE, RELEASE_ID } from '../../domain/releases';

const fleet = useFleet({
  hosts: [
    { roles: ['web-nginx'] },
    { roles: ['web-nginx'] },
    { roles: ['web-nginx'] },
    { roles: ['db'] },
    { roles: ['lb'] },
  ],
});

const LB_PORT = 8080;
// A copy of Debian's WordPress, so that the tests can make new releases of it.
const source = mkdtempSync(join(tmpdir(), 'sitefleet-lb-wp-'));
cpSync(WORDPRESS_SOURCE, source, { recursive: true, verbatimSymlinks: true });
after(() => rmSync(source, { recursive: true, force: true }));
const platform = { ...wordpressPlatform, source: { type: 'path' as const, path: source } };
const site = wordpressSite('lb.example.com');

describe('a load balancer in front of a cluster', () => {
  const { lb, group, throughLb, lbView, settledView, underLoad, release, releasesOn, breakReleaseOn } = lbCluster({
    fleet,
    lbHost: 'h5',
    port: LB_PORT,
    cluster: 'c1',
    platform,
    site,
  });

  test('installing a site on a cluster with a load balancer routes it to every member', async () => {
    await fleet().run('CreatePlatformOnCluster', `${workflowIds.platform('wp')}-lb`, {
      platform,
      group: clusterGroup(
        'c1',
        ['h1', 'h2'].map((n) => fleet().server(n)),
      ),
    });
    await fleet().run('InstallSiteOnCluster', workflowIds.site(site.domain), {
      site,
      platform,
      group: group(['h1', 'h2'], []),
      dbServer: fleet().server('h4'),
    });
    assert.deepEqual(await throughLb(6), { served: ['h1', 'h2'], statuses: [200] });
    const view = await lbView();
    assert.deepEqual(
      view.map((s) => `${s.backend}/${s.server}`),
      ['sitefleet_c1_lb.example.com/h1', 'sitefleet_c1_lb.example.com/h2'],
    );
    const config = await fleet().bed.exec('h5', ['cat', '/etc/haproxy/haproxy.cfg']);
    assert.match(
      config.stdout,
      /# BEGIN sitefleet:cluster:c1\n[\s\S]*http-check send meth GET uri \/sitefleet-health\.php ver HTTP\/1\.1 hdr Host lb\.example\.com/,
    );
    assert.match(config.stdout, /^frontend web$/m, "the lb host's own config is still there");
  });

  test('AddClusterMember puts the new member on the load balancer after it serves every site', async () => {
    await fleet().run('AddClusterMember', workflowIds.cluster('c1'), {
      group: group(['h1', 'h2']),
      member: fleet().server('h3'),
      platforms: [platform],
      sites: [site],
      dbServers: [fleet().server('h4')],
    });
    assert.deepEqual(await throughLb(9), { served: ['h1', 'h2', 'h3'], statuses: [200] });
    // haproxy's own health checks of the site (its health script) find every member up.
    assert.deepEqual(await settledView(), ['h1 UP', 'h2 UP', 'h3 UP']);
  });

  test('DisableSite takes the site off the load balancer (503 there too); EnableSite puts it back', async () => {
    const input = { site, platform, group: group(['h1', 'h2', 'h3']), dbServer: fleet().server('h4') };
    await fleet().run('DisableSite', workflowIds.site(site.domain), input);
    assert.deepEqual(await throughLb(3), { served: [], statuses: [503] });
    assert.deepEqual(await lbView(), []);
    await fleet().run('EnableSite', workflowIds.site(site.domain), {
      ...input,
      group: group(['h1', 'h2', 'h3'], [{ ...site, status: 'disabled' }]),
    });
    assert.deepEqual(await throughLb(9), { served: ['h1', 'h2', 'h3'], statuses: [200] });
  });

  const resync = (label: string) =>
    fleet().run<ResyncReport>('ResyncCluster', `resync/cluster/c1-${label}`, {
      group: group(['h1', 'h2', 'h3']),
      platforms: [platform],
      sites: [site],
      dbServers: [fleet().server('h4')],
    });

  test('VerifyClusterNodes checks the LB view of each member: a drained member fails that check', async () => {
    const verify = (label: string) =>
      fleet().run<VerifyReport>('VerifyClusterNodes', `verify/cluster/c1-${label}`, {
        group: group(['h1', 'h2', 'h3']),
        platforms: [platform],
        sites: [site],
        dbServers: [fleet().server('h4')],
      });
    const lbCheck = (r: VerifyReport) =>
      r.nodes.map((n) => `${n.server} ${String(n.checks.find((c) => c.name === 'load-balancer')?.ok)}`);
    // The site was just enabled again (previous test): its new backend's health checks first find every member up.
    assert.deepEqual(await settledView(), ['h1 UP', 'h2 UP', 'h3 UP']);
    const green = await verify('green');
    assert.deepEqual(
      lbCheck(green),
      ['h1 true', 'h2 true', 'h3 true'],
      JSON.stringify(green.nodes.map((n) => n.checks.find((c) => c.name === 'load-balancer'))),
    );
    await setLoadBalancerMember({ lb: lb(), cluster: 'c1', member: 'h2', state: 'drain' });
    try {
      const drained = await verify('drained');
      assert.deepEqual(lbCheck(drained), ['h1 true', 'h2 false', 'h3 true']);
      const detail = drained.nodes[1]?.checks.find((c) => c.name === 'load-balancer')?.detail;
      assert.match(String(detail), /lb\.example\.com: DRAIN/);
      assert.deepEqual((await throughLb(4)).served, ['h1', 'h3'], 'a drained member gets no new requests');
    } finally {
      await setLoadBalancerMember({ lb: lb(), cluster: 'c1', member: 'h2', state: 'ready' });
    }
  });

  test('a code change behind the LB rolls out one member at a time with 0 failed requests', async () => {
    const idle = await underLoad(() => new Promise((r) => setTimeout(r, 4000)));
    writeFileSync(join(source, 'sitefleet-release.txt'), 'release 2\n');
    const during = await underLoad(async () => {
      const report = await resync('release-2');
      assert.equal(report.ok, true, JSON.stringify(report));
    });
    console.log(
      `rolling update on 3 members (2 cores shared, under load): ${during.requests} requests, ${during.failed} failed; ` +
        `p99 ${during.p99Ms.toFixed(1)} ms during the update, ${idle.p99Ms.toFixed(1)} ms without`,
    );
    assert.equal(idle.failed, 0, idle.examples.join('; '));
    assert.ok(during.requests > 0);
    assert.equal(during.failed, 0, during.examples.join('; '));
    for (const host of ['h1', 'h2', 'h3']) assert.equal(await release(host), 'release 2', `${host} runs release 2`);
    assert.deepEqual(
      (await lbView()).map((s) => `${s.server} ${s.status}`),
      ['h1 UP', 'h2 UP', 'h3 UP'],
      'every member is back in rotation',
    );
    // Each member's platform directory became the first release; release 2 is a new one, and the link points to it.
    for (const host of ['h1', 'h2', 'h3']) {
      const { current, releases } = await releasesOn(host);
      assert.deepEqual(releases, [ADOPTED_RELEASE, current], `${host}: ${current} ${releases.join(' ')}`);
      assert.match(current, RELEASE_ID);
    }
    // Verification follows the link: the release layout is no drift.
    const verified = await fleet().run<VerifyReport>('VerifyClusterNodes', 'verify/cluster/c1-releases', {
      group: group(['h1', 'h2', 'h3']),
      platforms: [platform],
      sites: [site],
      dbServers: [fleet().server('h4')],
    });
    const drift = verified.nodes.map((n) => `${n.server} ${String(n.checks.find((c) => c.name === 'drift:wp')?.ok)}`);
    assert.deepEqual(drift, ['h1 true', 'h2 true', 'h3 true'], JSON.stringify(verified.nodes));
  });

  test('a release that breaks on the 2nd member: it and the 1st switch back, the 3rd is not reached, 0 failed requests', async () => {
    // Broken on h2 only, so that h1 is done (and back in rotation) before the failure.
    const index = join(source, 'index.php');
    const good = await breakReleaseOn(source, 'h2', 'release 3');
    const before = await releasesOn('h1');
    let deployError: unknown;
    const during = await underLoad(async () => {
      // The platform deployment (UpdatePlatformOnCluster's path) behind the LB; ResyncCluster takes the same route.
      await fleet()
        .run('CreatePlatformOnCluster', `${workflowIds.platform('wp')}-lb-release-3`, {
          platform,
          group: group(['h1', 'h2', 'h3']),
        })
        .catch((err: unknown) => (deployError = err));
    });
    assert.ok(deployError, 'the deployment fails');
    const cause = String((deployError as { cause?: { message?: string } }).cause?.message);
    assert.match(cause, /rolling update stopped at h2: probe every site: .*\(switched back to its previous release\)/);
    assert.match(cause, /updated: none; switched back: h2, h1; not reached: h3/);
    console.log(
      `broken release on the 2nd of 3 members, switched back: ${during.requests} requests, ${during.failed} failed`,
    );
    assert.equal(during.failed, 0, during.examples.join('; '));
    for (const host of ['h1', 'h2', 'h3'])
      assert.equal(await release(host), 'release 2', `${host} runs release 2 again`);
    assert.deepEqual(
      (await lbView()).map((s) => `${s.server} ${s.status.split(' ')[0]}`),
      ['h1 UP', 'h2 UP', 'h3 UP'],
      'the members switched back are in rotation again',
    );
    const after = await releasesOn('h1');
    assert.equal(after.current, before.current, 'h1 links to its previous release');
    assert.equal(after.releases.filter((r) => r.endsWith('.rolled-back')).length, 1, after.releases.join(' '));
    assert.deepEqual((await releasesOn('h3')).releases, before.releases, 'h3 was not touched');
    // The fixed release goes out the same way, deployed with the relay asked for: the members behind the LB get it
    // in a release by the rolling update, and the relay (which refuses a platform link) has no member left to do.
    writeFileSync(index, good);
    const fixed = await underLoad(async () => {
      await fleet().run('CreatePlatformOnCluster', `${workflowIds.platform('wp')}-lb-release-3-fixed`, {
        platform,
        group: group(['h1', 'h2', 'h3']),
        transfer: { mode: 'relay' },
      });
    });
    assert.equal(fixed.failed, 0, fixed.examples.join('; '));
    for (const host of ['h1', 'h2', 'h3']) assert.equal(await release(host), 'release 3');
  });

  test('RollbackPlatform puts every member back on its previous release in one step, 0 failed requests', async () => {
    const before = await Promise.all(['h1', 'h2', 'h3'].map(releasesOn));
    // A change to the site's directory since the previous release was made: the code goes back, the site stays.
    const marker = (host: string) =>
      `${siteDir(fleet().server(host), platform.name, site.domain)}/sitefleet-marker.txt`;
    for (const host of ['h1', 'h2', 'h3'])
      await fleet().bed.exec(host, ['sh', '-c', 'echo kept > "$1"', 'sh', marker(host)]);
    let result: RollbackPlatformResult | undefined;
    const during = await underLoad(async () => {
      result = await fleet().run('RollbackPlatform', `${workflowIds.platform('wp')}-lb-rollback`, {
        platform,
        group: group(['h1', 'h2', 'h3']),
      });
    });
    assert.equal(during.failed, 0, during.examples.join('; '));
    for (const host of ['h1', 'h2', 'h3']) assert.equal(await release(host), 'release 2', `${host} runs release 2`);
    assert.deepEqual(
      result?.members.map((m) => m.server),
      ['h1', 'h2', 'h3'],
    );
    for (const [i, host] of ['h1', 'h2', 'h3'].entries()) {
      const now = await releasesOn(host);
      const m: RollbackPlatformResult['members'][number] | undefined = result?.members[i];
      assert.equal(m?.from, before[i]?.current);
      assert.equal(m?.to, now.current);
      assert.ok(now.releases.includes(`${m?.from}.rolled-back`), `${host} set ${m?.from} aside`);
      assert.equal(
        (await fleet().bed.exec(host, ['cat', marker(host)])).stdout,
        'kept\n',
        `${host} kept the site's directory`,
      );
    }
  });

  test('RemoveClusterMember drains the member at the load balancer before it stops serving', async () => {
    await fleet().run('RemoveClusterMember', workflowIds.cluster('c1'), {
      group: group(['h1', 'h2', 'h3']),
      member: fleet().server('h1'),
      platforms: [platform],
      sites: [site],
      dbServers: [fleet().server('h4')],
    });
    assert.deepEqual(await throughLb(6), { served: ['h2', 'h3'], statuses: [200] });
    assert.deepEqual(
      (await lbView()).map((s) => s.server),
      ['h2', 'h3'],
    );
  });

  test('a config that haproxy -c refuses is put back; the workflow fails with ConfigTestFailed', async () => {
    // Someone broke the lb host's own part of the config: haproxy -c refuses the whole file, so sitefleet must not
    // reload it, and must leave the file as it found it.
    const file = '/etc/haproxy/haproxy.cfg';
    await fleet().bed.exec('h5', ['sed', '-i', '/^frontend web$/a\\    no-such-keyword 1', file]);
    const before = await fleet().bed.exec('h5', ['cat', file]);
    assert.match(before.stdout, /no-such-keyword/);
    try {
      await assert.rejects(
        fleet().run('ConfigureClusterLoadBalancer', workflowIds.cluster('c1'), {
          group: group(['h2']),
          platforms: [platform],
          sites: [site],
        }),
        (err: Error) => {
          const cause = (err as { cause?: { message?: string; cause?: { type?: string } } }).cause;
          assert.match(String(cause?.message), /haproxy -c refused the config for cluster c1/);
          return true;
        },
      );
      assert.equal((await fleet().bed.exec('h5', ['cat', file])).stdout, before.stdout);
      assert.deepEqual(
        await throughLb(4),
        { served: ['h2', 'h3'], statuses: [200] },
        'the running haproxy is unchanged',
      );
    } finally {
      await fleet().bed.exec('h5', ['sed', '-i', '/no-such-keyword/d', file]);
    }
  });
});
