/**
 * Reliability: the Temporal server is restarted in the middle of an operation — stopped cleanly (SIGTERM) once and
 * killed (SIGKILL) once, down a few seconds, started again on the same port and SQLite file. The worker keeps
 * running through the outage, the operation completes, and every node and the database server end as after an
 * undisturbed run.
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

const fleet = useCrashableFleet(
  { hosts: [{ roles: ['web-nginx'] }, { roles: ['web-nginx'] }, { roles: ['db'] }] },
  { restartableServer: true },
);

const MEMBERS = ['h1', 'h2'];
const SOURCE = '/usr/share/wordpress';
const platform: Platform = {
  name: 'wp',
  target: { kind: 'cluster', name: 'c1' },
  source: { type: 'path', path: SOURCE },
  profile: 'wordpress',
};
const site: Site = {
  domain: 'restart.example.com',
  aliases: [],
  platform: 'wp',
  dbServer: 'h3',
  https: false,
  status: 'enabled',
};
const group = () =>
  clusterGroup(
    'c1',
    MEMBERS.map((n) => fleet().server(n)),
  );

describe('the Temporal server restarts in the middle of an operation', () => {
  test('CreatePlatformOnCluster: restarted during the rsync fan-out; it completes and every member has the tree', async (t) => {
    const worker = fleet().worker();
    const handle = await fleet().start('CreatePlatformOnCluster', workflowIds.platform('wp'), {
      platform,
      group: group(),
    });
    await waitForPending(handle, onlyStarted('syncPlatform'));
    const started = Date.now();
    const outage = await fleet().devServer!.restart();
    const result = (await handle.result()) as PlatformResult;
    t.diagnostic(
      `server stopped in ${outage.stoppedInMs} ms, answered again after ${outage.downMs} ms; ` +
        `operation completed ${Date.now() - started} ms after the restart began`,
    );

    assert.ok(worker.running(), 'the worker lived through the outage');
    assert.deepEqual(result.synced.map((s) => s.server).sort(), MEMBERS);
    const expected = await sourceManifest(SOURCE);
    for (const host of MEMBERS) {
      const diff = manifestDiff(expected, await platformManifest(fleet().bed, host, '/var/aegir/platforms/wp'));
      assert.deepEqual(diff, { missing: [], extra: [] }, `${host} has exactly the source tree`);
    }
    t.diagnostic(`activities run again: ${retried(await activityRuns(handle)).join('; ') || 'none'}`);
  });

  test('InstallSiteOnCluster: server killed while vhosts are installed; it completes; one vhost, database and user', async (t) => {
    const worker = fleet().worker();
    const handle = await fleet().start('InstallSiteOnCluster', workflowIds.site(site.domain), {
      site,
      platform,
      group: group(),
      dbServer: fleet().server('h3'),
    });
    await waitForPending(handle, (pending) => pending.some((p) => p.type === 'installVhost'));
    const started = Date.now();
    const outage = await fleet().devServer!.restart(2_000, 'SIGKILL');
    const result = (await handle.result()) as InstallSiteResult;
    t.diagnostic(
      `server down for ${outage.downMs} ms; operation completed ${Date.now() - started} ms after the restart began`,
    );

    assert.ok(worker.running(), 'the worker lived through the outage');
    assert.deepEqual(
      result.members.map((m) => `${m.server}:${m.status}`),
      MEMBERS.map((m) => `${m}:200`),
    );
    for (const host of MEMBERS) {
      assert.equal(
        await siteOnNode(fleet().bed, host, site.domain, 'wp'),
        `vhost ${site.domain}\ndir ${site.domain}\nsettings\n`,
      );
      const rest = await fleet().bed.httpGet(host, '/?rest_route=/', { headers: { Host: site.domain } });
      assert.equal((JSON.parse(rest.body) as { name: string }).name, site.domain, `${host} serves the site`);
    }
    assert.deepEqual(await siteOnDatabase(fleet().bed, 'h3', site.domain), {
      databases: 1,
      userHosts: MEMBERS.map((h) => fleet().bed.ip(h)).sort(),
      wordpressUsers: 1,
    });
    t.diagnostic(`activities run again: ${retried(await activityRuns(handle)).join('; ') || 'none'}`);
  });

  test('the histories survived the restarts and hold no password; nor does the worker output', async () => {
    const histories = await everyHistoryText(fleet().client);
    assert.deepEqual(histories.map((h) => h.workflowId).sort(), [
      workflowIds.platform('wp'),
      workflowIds.site(site.domain),
    ]);
    const texts = [
      ...histories.map((h) => ({ name: `history ${h.workflowId}`, text: h.text })),
      { name: 'worker output', text: fleet().workerOutput() },
    ];
    assert.deepEqual(secretLeaks(texts, await secretsOf([site.domain])), []);
  });
});
