/**
 * The rolling update, its switch-back and RollbackPlatform on Apache members behind haproxy, under load. Apache has
 * no `$realpath_root`: PHP (php-fpm behind mod_proxy_fcgi) sees the platform link itself, so sitefleet reloads
 * php-fpm on each drained member after the switch, and on every member after a rollback. These tests prove that
 * path serves the new (or old) release with 0 failed requests, as load-balancer.test.ts does for nginx.
 */
import assert from 'node:assert/strict';
import { cpSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { workflowIds } from '../../domain/operations';
import type { RollbackPlatformResult } from '../../workflows/rollback';
import { clusterGroup, useFleet } from '../support/fleet';
import { lbCluster } from '../support/lb-cluster';
import { WORDPRESS_SOURCE, wordpressPlatform, wordpressSite } from '../support/wordpress';
import { ADOPTED_RELEASE, RELEASE_ID } from '../../domain/releases';

// h4 is the db host that wordpressSite names.
const fleet = useFleet({
  hosts: [{ roles: ['web-apache'] }, { roles: ['web-apache'] }, { roles: ['lb'] }, { roles: ['db'] }],
});

const LB_PORT = 8080;
const source = mkdtempSync(join(tmpdir(), 'sitefleet-apache-wp-'));
cpSync(WORDPRESS_SOURCE, source, { recursive: true, verbatimSymlinks: true });
writeFileSync(join(source, 'sitefleet-release.txt'), 'release 1\n');
after(() => rmSync(source, { recursive: true, force: true }));
const platform = { ...wordpressPlatform, source: { type: 'path' as const, path: source } };
const site = wordpressSite('apache-lb.example.com');
const MEMBERS = ['h1', 'h2'];

describe('rolling updates on Apache members behind a load balancer', () => {
  const { group, throughLb, settledView, underLoad, release, releasesOn, breakReleaseOn } = lbCluster({
    fleet,
    lbHost: 'h3',
    port: LB_PORT,
    cluster: 'c1',
    platform,
    site,
  });
  const deploy = (label: string) =>
    fleet().run('CreatePlatformOnCluster', `${workflowIds.platform('wp')}-apache-${label}`, {
      platform,
      group: group(MEMBERS),
    });

  test('the site is served through the load balancer by both Apache members', async () => {
    await fleet().run('CreatePlatformOnCluster', `${workflowIds.platform('wp')}-apache`, {
      platform,
      group: clusterGroup(
        'c1',
        MEMBERS.map((n) => fleet().server(n)),
      ),
    });
    await fleet().run('InstallSiteOnCluster', workflowIds.site(site.domain), {
      site,
      platform,
      group: group(MEMBERS, []),
      dbServer: fleet().server('h4'),
    });
    assert.deepEqual(await throughLb(6), { served: MEMBERS, statuses: [200] });
    assert.deepEqual(await settledView(), ['h1 UP', 'h2 UP']);
    for (const host of MEMBERS) assert.equal(await release(host), 'release 1');
  });

  test('a code change rolls out one Apache member at a time into a new release, 0 failed requests', async () => {
    writeFileSync(join(source, 'sitefleet-release.txt'), 'release 2\n');
    const during = await underLoad(() => deploy('release-2'));
    console.log(`rolling update on 2 Apache members: ${during.requests} requests, ${during.failed} failed`);
    assert.ok(during.requests > 0);
    assert.equal(during.failed, 0, during.examples.join('; '));
    for (const host of MEMBERS) {
      assert.equal(await release(host), 'release 2', `${host} serves release 2`);
      const { current, releases } = await releasesOn(host);
      assert.match(current, RELEASE_ID);
      assert.deepEqual(releases, [ADOPTED_RELEASE, current], `${host}: ${current} ${releases.join(' ')}`);
    }
    assert.deepEqual(await settledView(), ['h1 UP', 'h2 UP'], 'every member is back in rotation');
  });

  test('a release that breaks on the 2nd Apache member: both switch back to release 2, 0 failed requests', async () => {
    const good = await breakReleaseOn(source, 'h2', 'release 3');
    const before = await Promise.all(MEMBERS.map(releasesOn));
    let deployError: unknown;
    try {
      const during = await underLoad(() => deploy('release-3').catch((err: unknown) => (deployError = err)));
      console.log(`broken release on the 2nd Apache member: ${during.requests} requests, ${during.failed} failed`);
      assert.equal(during.failed, 0, during.examples.join('; '));
    } finally {
      writeFileSync(join(source, 'index.php'), good);
      writeFileSync(join(source, 'sitefleet-release.txt'), 'release 2\n');
    }
    const cause = String((deployError as { cause?: { message?: string } } | undefined)?.cause?.message);
    assert.match(cause, /rolling update stopped at h2: probe every site: .*\(switched back to its previous release\)/);
    assert.match(cause, /updated: none; switched back: h2, h1/);
    for (const [i, host] of MEMBERS.entries()) {
      // PHP on Apache sees the link: after the switch back and php-fpm's reload it runs release 2's code again.
      assert.equal(await release(host), 'release 2', `${host} serves release 2 again`);
      assert.equal((await releasesOn(host)).current, before[i]?.current, `${host} links to its previous release`);
      const rest = await fleet().bed.httpGet(host, '/?rest_route=/', { headers: { Host: site.domain } });
      assert.equal(rest.status, 200, `${host} runs the good index.php: ${rest.body.slice(0, 200)}`);
    }
    assert.deepEqual(await settledView(), ['h1 UP', 'h2 UP'], 'the members switched back are in rotation again');
  });

  test('RollbackPlatform puts both Apache members back on the adopted release, each drained for the reload, 0 failed', async () => {
    const before = await Promise.all(MEMBERS.map(releasesOn));
    let result: RollbackPlatformResult | undefined;
    const during = await underLoad(async () => {
      result = await fleet().run('RollbackPlatform', `${workflowIds.platform('wp')}-apache-rollback`, {
        platform,
        group: group(MEMBERS),
      });
    });
    console.log(`RollbackPlatform on 2 Apache members: ${during.requests} requests, ${during.failed} failed`);
    assert.equal(during.failed, 0, during.examples.join('; '));
    for (const [i, host] of MEMBERS.entries()) {
      assert.equal(await release(host), 'release 1', `${host} serves release 1 again`);
      const member = result?.members[i];
      assert.equal(member?.server, host);
      assert.equal(member?.from, before[i]?.current);
      assert.equal(member?.to, ADOPTED_RELEASE);
      assert.ok((await releasesOn(host)).releases.includes(`${member?.from}.rolled-back`), `${host} set it aside`);
    }
  });
});
