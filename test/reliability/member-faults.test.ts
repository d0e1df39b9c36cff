/**
 * Reliability: a cluster member fails while an operation runs — it goes down (power loss), or its config test
 * fails. The operation retries what can be retried, then undoes every completed step; the other members end as
 * they were and keep serving their sites, and no member ever loads a config that failed its test.
 */
import assert from 'node:assert/strict';
import { before, describe, test } from 'node:test';
import { WorkflowFailedError } from '@temporalio/client';
import { workflowIds } from '../../domain/operations';
import { clusterGroup, useFleet } from '../support/fleet';
import { activityRuns, groupSnapshot, nginxState, sleep, waitFor, waitForPending } from '../support/reliability';
import { wordpressPlatform, wordpressSite } from '../support/wordpress';

const fleet = useFleet({
  hosts: [{ roles: ['web-nginx'] }, { roles: ['web-nginx'] }, { roles: ['web-nginx'] }, { roles: ['db'] }],
});

const MEMBERS = ['h1', 'h2', 'h3'];
const platform = wordpressPlatform;
const site = wordpressSite;
const BLOG = 'blog.example.com';

describe('a cluster member fails during an operation', () => {
  const group = () =>
    clusterGroup(
      'c1',
      MEMBERS.map((n) => fleet().server(n)),
    );
  const installInput = (domain: string) => ({
    site: site(domain),
    platform,
    group: group(),
    dbServer: fleet().server('h4'),
  });

  /** The site each member must keep serving whatever happens to the others. */
  async function assertServesBlog(hosts: string[]): Promise<void> {
    for (const host of hosts) {
      const res = await fleet().bed.httpGet(host, '/?rest_route=/', { headers: { Host: BLOG } });
      assert.equal(res.status, 200, `${host} serves ${BLOG}`);
      assert.equal((JSON.parse(res.body) as { name: string }).name, BLOG, `${host} serves ${BLOG} from its database`);
    }
  }

  before(async () => {
    await fleet().run('CreatePlatformOnCluster', workflowIds.platform('wp'), { platform, group: group() });
    await fleet().run('InstallSiteOnCluster', workflowIds.site(BLOG), installInput(BLOG));
  });

  /** h1, h2 and the database server before the install that h3's outage fails, and while h3 is still down. */
  const outage: { before?: Record<string, string>; whileDown?: Record<string, string> } = {};

  test('a member goes down during an install: its step is retried, then every completed step is undone', async (t) => {
    const before = await groupSnapshot(fleet().bed, MEMBERS, 'h4');
    outage.before = before;
    const domain = 'down.example.com';
    const started = Date.now();
    const handle = await fleet().start('InstallSiteOnCluster', workflowIds.site(domain), installInput(domain));
    // Power h3 off once the database is being made: the site directories (h3's included) come next.
    await waitForPending(handle, (pending) => pending.some((p) => /Database$/.test(p.type)));
    await fleet().bed.stopHost('h3');
    try {
      // The step on h3 is retried up to its limit; then the undo begins, and its steps on h3 wait for h3.
      await waitFor(async () =>
        (await activityRuns(handle)).some(
          (r) => r.type === 'ensureSiteDir' && r.server === 'h3' && r.outcome === 'failed',
        ),
      );
      t.diagnostic(`h3's step gave up ${Date.now() - started} ms after the start`);
      await sleep(5_000);
      outage.whileDown = await groupSnapshot(fleet().bed, ['h1', 'h2'], 'h4');
      await assertServesBlog(['h1', 'h2']);
    } finally {
      await fleet().bed.startHost('h3');
    }
    await assert.rejects(handle.result(), (err: unknown) => {
      assert.ok(err instanceof WorkflowFailedError);
      assert.match(
        String(err.cause?.message),
        /^create site directory failed: server h3: cannot reach .*\. Every completed step was undone\.$/,
      );
      return true;
    });
    t.diagnostic(`failed and undone ${Date.now() - started} ms after the start`);
    const onH3 = (await activityRuns(handle)).filter((r) => r.server === 'h3' && r.type === 'ensureSiteDir');
    assert.deepEqual(
      onH3.map((r) => `${r.outcome} after attempt ${r.attempt}`),
      ['failed after attempt 5'],
      'the step on h3 was retried up to the limit',
    );
    assert.deepEqual(await groupSnapshot(fleet().bed, MEMBERS, 'h4'), before, 'every node and the database as before');
    await assertServesBlog(MEMBERS);
  });

  test('while the member is still down, the members that stayed up and the database server are already as before', () => {
    // The undos on h3 wait for h3; the undos on h1, h2 and the database server do not wait for them (workflows/saga.ts).
    const { before, whileDown } = outage;
    assert.ok(before && whileDown, 'the outage case ran');
    assert.deepEqual(whileDown, { h1: before.h1, h2: before.h2, h4: before.h4 });
  });

  test('a config test fails on one member: no member reloads a broken config; every member keeps serving', async () => {
    // cluster.test.ts checks that the install is undone everywhere; this checks what each nginx actually loaded.
    const before = await groupSnapshot(fleet().bed, MEMBERS, 'h4');
    const nginxBefore = await Promise.all(MEMBERS.map((h) => nginxState(fleet().bed, h)));
    await fleet().bed.writeFile(
      'h2',
      '/var/aegir/config/server_h2/nginx/vhost.d/zz-broken',
      'server { listen 80; this_is_not_a_directive; }\n',
    );
    try {
      await assert.rejects(
        fleet().run('InstallSiteOnCluster', workflowIds.site('broken.example.com'), installInput('broken.example.com')),
        (err: unknown) =>
          err instanceof WorkflowFailedError &&
          /install vhost failed: server h2: the vhost of broken\.example\.com failed the nginx config test/.test(
            String(err.cause?.message),
          ),
      );
    } finally {
      await fleet().bed.exec('h2', ['rm', '-f', '/var/aegir/config/server_h2/nginx/vhost.d/zz-broken']);
    }
    const nginxAfter = await Promise.all(MEMBERS.map((h) => nginxState(fleet().bed, h)));
    assert.deepEqual(nginxAfter[1], nginxBefore[1], 'h2 never reloaded: same master, same workers, no [emerg]');
    for (const i of [0, 2]) {
      const host = MEMBERS[i];
      assert.equal(nginxAfter[i]?.master, nginxBefore[i]?.master, `${host}: same nginx master`);
      assert.notEqual(nginxAfter[i]?.workers, nginxBefore[i]?.workers, `${host} reloaded (install, then undo)`);
      assert.equal(nginxAfter[i]?.emerg, nginxBefore[i]?.emerg, `${host}: no reload hit a config error`);
    }
    for (const host of MEMBERS) {
      await fleet().bed.exec(host, ['nginx', '-t'], { check: true });
    }
    assert.deepEqual(await groupSnapshot(fleet().bed, MEMBERS, 'h4'), before);
    await assertServesBlog(MEMBERS);
  });
});
