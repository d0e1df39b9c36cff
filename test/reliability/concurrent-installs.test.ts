/**
 * Reliability: 20 WordPress site installs and a verification of the cluster, all started at once on one 3-member
 * cluster (each member reloads nginx 20 times while the others install). Every install completes, the verification
 * finds the site that was already there healthy on every member throughout, and every node and the database server
 * end with exactly one vhost, directory, database and account set per site.
 */
import assert from 'node:assert/strict';
import { before, describe, test } from 'node:test';
import { workflowIds } from '../../domain/operations';
import type { InstallSiteResult } from '../../workflows/site';
import type { VerifyReport } from '../../workflows/verify';
import { clusterGroup, useFleet } from '../support/fleet';
import { siteOnDatabase, siteOnNode } from '../support/reliability';
import { wordpressPlatform, wordpressSite } from '../support/wordpress';

const fleet = useFleet({
  hosts: [{ roles: ['web-nginx'] }, { roles: ['web-nginx'] }, { roles: ['web-nginx'] }, { roles: ['db'] }],
});

const MEMBERS = ['h1', 'h2', 'h3'];
const INSTALLS = 20;
const platform = wordpressPlatform;
const site = wordpressSite;
const BLOG = 'blog.example.com';
const DOMAINS = Array.from({ length: INSTALLS }, (_, i) => `site${String(i + 1).padStart(2, '0')}.example.com`);

describe(`${INSTALLS} site installs and a verification at once on one cluster`, () => {
  const group = () =>
    clusterGroup(
      'c1',
      MEMBERS.map((n) => fleet().server(n)),
    );
  const verifyInput = (domains: string[]) => ({
    group: group(),
    platforms: [platform],
    sites: domains.map(site),
    dbServers: [fleet().server('h4')],
  });
  const failing = (report: VerifyReport) =>
    report.nodes.flatMap((n) => n.checks.filter((c) => !c.ok).map((c) => `${n.server}:${c.name}: ${c.detail}`));

  before(async () => {
    await fleet().run('CreatePlatformOnCluster', workflowIds.platform('wp'), { platform, group: group() });
    await fleet().run('InstallSiteOnCluster', workflowIds.site(BLOG), {
      site: site(BLOG),
      platform,
      group: group(),
      dbServer: fleet().server('h4'),
    });
  });

  test('every install completes; the verification running beside them finds every member healthy', async (t) => {
    const started = Date.now();
    const installs = DOMAINS.map((domain) =>
      fleet().run<InstallSiteResult>('InstallSiteOnCluster', workflowIds.site(domain), {
        site: site(domain),
        platform,
        group: group(),
        dbServer: fleet().server('h4'),
      }),
    );
    const verify = fleet().run<VerifyReport>(
      'VerifyClusterNodes',
      workflowIds.verify('cluster', 'c1'),
      verifyInput([BLOG]),
    );
    const settled = await Promise.allSettled([...installs, verify]);
    t.diagnostic(`${INSTALLS} installs and a verification in ${Date.now() - started} ms`);
    const failures = settled.flatMap((s, i) =>
      s.status === 'rejected' ? [`${DOMAINS[i] ?? 'verify'}: ${String((s.reason as Error).cause ?? s.reason)}`] : [],
    );
    assert.deepEqual(failures, []);
    const report = (settled[INSTALLS] as PromiseFulfilledResult<VerifyReport>).value;
    assert.deepEqual(failing(report), [], `${BLOG} stayed healthy on every member during the installs`);
  });

  test('every node and the database server hold each site exactly once; a verification of all sites is green', async () => {
    const all = [BLOG, ...DOMAINS];
    for (const host of MEMBERS) {
      const listing = await fleet().bed.exec(host, [
        'sh',
        '-c',
        'ls -A "$1"; echo --; ls -A "$2"',
        'ls',
        `/var/aegir/config/server_${host}/nginx/vhost.d`,
        '/var/aegir/platforms/wp/sites',
      ]);
      const [vhosts = '', dirs = ''] = listing.stdout.split('--\n');
      assert.deepEqual(vhosts.split('\n').filter(Boolean).sort(), [...all].sort(), `${host}: one vhost per site`);
      assert.deepEqual(dirs.split('\n').filter(Boolean).sort(), [...all].sort(), `${host}: one directory per site`);
      for (const domain of DOMAINS) {
        assert.equal(
          await siteOnNode(fleet().bed, host, domain, 'wp'),
          `vhost ${domain}\ndir ${domain}\nsettings\n`,
          `${host}: ${domain}`,
        );
      }
    }
    const expectedHosts = MEMBERS.map((h) => fleet().bed.ip(h)).sort();
    for (const domain of all) {
      assert.deepEqual(
        await siteOnDatabase(fleet().bed, 'h4', domain),
        { databases: 1, userHosts: expectedHosts, wordpressUsers: 1 },
        domain,
      );
    }
    const report = await fleet().run<VerifyReport>(
      'VerifyClusterNodes',
      workflowIds.verify('cluster', 'c1'),
      verifyInput(all),
    );
    assert.deepEqual(failing(report), []);
  });
});
