/**
 * Reliability: the worker dies (SIGKILL to it and every rsync and ssh it started) in the middle of an operation; a
 * new worker resumes it; the operation completes and nothing is done twice. The kill lands inside a `transfer`
 * activity (rsync, the WordPress installer), whose 20 s heartbeat timeout is what hands it to the new worker; a
 * `quick` activity would wait for its 2-minute start-to-close timeout (test/reliability/long-cases.ts has that long case).
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { Platform, Site } from '../../domain/model';
import { workflowIds } from '../../domain/operations';
import type { PlatformResult } from '../../workflows/platform';
import type { InstallSiteResult } from '../../workflows/site';
import { clusterGroup } from '../support/fleet';
import {
  activityRuns,
  everyHistoryText,
  manifestDiff,
  onlyStarted,
  platformManifest,
  retried,
  secretLeaks,
  secretsOf,
  siteOnDatabase,
  siteOnNode,
  sourceManifest,
  useCrashableFleet,
  waitForPending,
} from '../support/reliability';

const fleet = useCrashableFleet({
  hosts: [{ roles: ['web-nginx'] }, { roles: ['web-nginx'] }, { roles: ['web-nginx'] }, { roles: ['db'] }],
});

const MEMBERS = ['h1', 'h2', 'h3'];
const SOURCE = '/usr/share/wordpress';
const platform: Platform = {
  name: 'wp',
  target: { kind: 'cluster', name: 'c1' },
  source: { type: 'path', path: SOURCE },
  profile: 'wordpress',
};
const site: Site = {
  domain: 'crash.example.com',
  aliases: [],
  platform: 'wp',
  dbServer: 'h4',
  https: false,
  status: 'enabled',
};
const group = () =>
  clusterGroup(
    'c1',
    MEMBERS.map((n) => fleet().server(n)),
  );

describe('the worker is SIGKILLed in the middle of an operation', () => {
  test('CreatePlatformOnCluster: killed during the rsync fan-out; a new worker finishes; every member has the tree once', async (t) => {
    const handle = await fleet().start('CreatePlatformOnCluster', workflowIds.platform('wp'), {
      platform,
      group: group(),
    });
    const atKill = await waitForPending(handle, onlyStarted('syncPlatform'));
    const killedAt = Date.now();
    await fleet().worker().crash();
    await fleet().startWorker();
    const result = (await handle.result()) as PlatformResult;
    t.diagnostic(`killed with ${atKill.length} rsync(s) running; completed ${Date.now() - killedAt} ms after the kill`);

    assert.deepEqual(result.synced.map((s) => s.server).sort(), MEMBERS);
    const expected = await sourceManifest(SOURCE);
    for (const host of MEMBERS) {
      const diff = manifestDiff(expected, await platformManifest(fleet().bed, host, '/var/aegir/platforms/wp'));
      assert.deepEqual(
        diff,
        { missing: [], extra: [] },
        `${host} has exactly the source tree (no partial or temp file)`,
      );
      const includes = await fleet().bed.exec(host, ['grep', '-rc', 'vhost.d', '/etc/nginx/conf.d']);
      assert.equal(includes.stdout.trim(), '/etc/nginx/conf.d/sitefleet.conf:1', `${host}: one include of the vhosts`);
    }
    const runs = await activityRuns(handle);
    const syncs = runs.filter((r) => r.type === 'syncPlatform');
    assert.deepEqual(syncs.map((r) => r.server).sort(), MEMBERS, 'one rsync activity per member');
    assert.ok(
      syncs.every((r) => r.outcome === 'completed'),
      JSON.stringify(syncs),
    );
    // Only activities the kill interrupted ran again, once each, handed over by their heartbeat timeout. The kill
    // counts rsync processes; an activity still fetching its source or connecting is interrupted too, so the bound
    // is the members (each at most once), not the rsyncs seen at the kill.
    const again = retried(runs);
    t.diagnostic(`run again: ${again.join('; ')}`);
    assert.ok(again.length >= 1 && again.length <= MEMBERS.length, again.join('; '));
    assert.ok(
      again.every((r) => /^syncPlatform@h\d attempt 2 after heartbeat timeout$/.test(r)),
      again.join('; '),
    );
  });

  test('InstallSiteOnCluster: killed during the WordPress installer; a new worker finishes; one vhost, database, user and admin', async (t) => {
    const handle = await fleet().start('InstallSiteOnCluster', workflowIds.site(site.domain), {
      site,
      platform,
      group: group(),
      dbServer: fleet().server('h4'),
    });
    await waitForPending(handle, onlyStarted('runSiteInstaller'));
    const killedAt = Date.now();
    await fleet().worker().crash();
    await fleet().startWorker();
    const result = (await handle.result()) as InstallSiteResult;
    t.diagnostic(`completed ${Date.now() - killedAt} ms after the kill`);

    assert.deepEqual(
      result.members.map((m) => `${m.server}:${m.status}`),
      MEMBERS.map((m) => `${m}:200`),
    );
    for (const host of MEMBERS) {
      assert.equal(
        await siteOnNode(fleet().bed, host, site.domain, 'wp'),
        `vhost ${site.domain}\ndir ${site.domain}\nsettings\n`,
        `${host}: one vhost, no temp file, the site directory and its settings`,
      );
      const rest = await fleet().bed.httpGet(host, '/?rest_route=/', { headers: { Host: site.domain } });
      assert.equal((JSON.parse(rest.body) as { name: string }).name, site.domain, `${host} serves the site`);
    }
    assert.deepEqual(await siteOnDatabase(fleet().bed, 'h4', site.domain), {
      databases: 1,
      userHosts: MEMBERS.map((h) => fleet().bed.ip(h)).sort(),
      wordpressUsers: 1,
    });
    const again = retried(await activityRuns(handle));
    assert.equal(again.length, 1, again.join('; '));
    assert.match(again[0] ?? '', /^runSiteInstaller@h\d attempt 2 after heartbeat timeout$/);
  });

  test('no database or admin password in any workflow history or in the output of any worker', async () => {
    const histories = await everyHistoryText(fleet().client);
    assert.ok(histories.length >= 2);
    assert.ok(
      histories.some((h) => h.text.includes(site.domain)),
      'the history text includes decoded payloads (positive control)',
    );
    const texts = [
      ...histories.map((h) => ({ name: `history ${h.workflowId}`, text: h.text })),
      { name: 'worker output', text: fleet().workerOutput() },
    ];
    assert.deepEqual(secretLeaks(texts, await secretsOf([site.domain])), []);
  });
});
