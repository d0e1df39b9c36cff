/**
 * Reliability, security faults: a server whose ssh host key changed is refused at once, naming both keys; a site
 * name that tries to leave its directory or run a command is refused before anything changes, by the workflow and
 * by the API (which also refuses every request without the right token); and no database or admin password ever
 * reaches a workflow history or the worker's output. test/api/bad-input.test.ts and api.test.ts cover the API's
 * input rules and token check field by field; here they are checked against a real worker and real hosts.
 */
import assert from 'node:assert/strict';
import { before, describe, test } from 'node:test';
import { WorkflowFailedError } from '@temporalio/client';
import type { Platform } from '../../domain/model';
import { workflowIds } from '../../domain/operations';
import { startHarness } from '../api/harness';
import { clusterGroup } from '../support/fleet';
import {
  activityRuns,
  changedSince,
  everyHistoryText,
  failureTypes,
  secretLeaks,
  secretsOf,
  useCrashableFleet,
} from '../support/reliability';
import { wordpressPlatform, wordpressSite } from '../support/wordpress';

const fleet = useCrashableFleet({
  hosts: [{ roles: ['web-nginx'] }, { roles: ['web-nginx'] }, { roles: ['web-nginx'] }, { roles: ['db'] }],
});

const HOSTS = ['h1', 'h2', 'h3', 'h4'];
const MARKER = '/tmp/reliability-marker';
/** Where an escaping site name could change something on a host. */
const WATCHED = ['/etc', '/var/aegir', '/var/www', '/root'];
const platform = wordpressPlatform;
const site = wordpressSite;
const SECURE = 'secure.example.com';
const HOSTILE = ['../../etc', 'a.com;id'];

describe('security faults', () => {
  const group = () =>
    clusterGroup(
      'c1',
      ['h1', 'h2'].map((n) => fleet().server(n)),
    );

  before(async () => {
    const run = async (type: string, id: string, input: unknown) => (await fleet().start(type, id, input)).result();
    await run('CreatePlatformOnCluster', workflowIds.platform('wp'), { platform, group: group() });
    await run('InstallSiteOnCluster', workflowIds.site(SECURE), {
      site: site(SECURE),
      platform,
      group: group(),
      dbServer: fleet().server('h4'),
    });
  });

  test('a changed host key is refused at once, naming the host and both fingerprints; nothing changes there', async () => {
    const change = await fleet().bed.changeHostKey('h3');
    await fleet().bed.exec('h3', ['touch', MARKER]);
    const onH3: Platform = { ...platform, name: 'wph3', target: { kind: 'cluster', name: 'c2' } };
    const handle = await fleet().start('CreatePlatformOnCluster', workflowIds.platform('wph3'), {
      platform: onH3,
      group: clusterGroup('c2', [fleet().server('h3')]),
    });
    await assert.rejects(handle.result(), (err: unknown) => {
      assert.ok(err instanceof WorkflowFailedError);
      assert.deepEqual(failureTypes(err).slice(1), ['OperationFailed', 'ActivityFailure', 'HostKeyMismatch']);
      const message = String(err.cause?.message);
      assert.match(message, /server h3 \(/);
      assert.ok(message.includes(change.previous), `names the pinned key ${change.previous}: ${message}`);
      assert.ok(message.includes(change.current), `names the presented key ${change.current}: ${message}`);
      return true;
    });
    const runs = await activityRuns(handle);
    assert.deepEqual(
      runs.map((r) => `${r.type}@${r.server}: ${r.outcome} after attempt ${r.attempt}`),
      ['ensureWebConfig@h3: failed after attempt 1'],
      'refused on the first attempt, never retried',
    );
    assert.deepEqual(await changedSince(fleet().bed, 'h3', MARKER, WATCHED), []);
  });

  test('a site name that leaves its directory or injects a command: the workflow refuses it (BadInput) before anything runs', async () => {
    for (const host of HOSTS) await fleet().bed.exec(host, ['touch', MARKER]);
    const databases = async () =>
      (await fleet().bed.exec('h4', ['mysql', '--batch', '-e', 'SHOW DATABASES; SELECT user, host FROM mysql.user']))
        .stdout;
    const dbBefore = await databases();
    for (const domain of HOSTILE) {
      const handle = await fleet().start('InstallSiteOnCluster', `reliability/hostile/${encodeURIComponent(domain)}`, {
        site: site(domain),
        platform,
        group: group(),
        dbServer: fleet().server('h4'),
      });
      await assert.rejects(handle.result(), (err: unknown) => {
        assert.deepEqual(failureTypes(err).slice(1), ['BadInput'], `${domain}: ${String(err)}`);
        assert.match(
          String((err as WorkflowFailedError).cause?.message),
          /^site: domain must be a lower-case DNS name/,
        );
        return true;
      });
      const ran = (await activityRuns(handle)).map((r) => `${r.type}@${r.server}`);
      assert.deepEqual(ran, [], `${JSON.stringify(domain)}: refused before any activity ran`);
    }
    for (const host of HOSTS) assert.deepEqual(await changedSince(fleet().bed, host, MARKER, WATCHED), [], host);
    assert.equal(await databases(), dbBefore, 'no database or account was made');
  });

  test('the API answers 401 without the right token and 400 for those site names, and starts nothing', async () => {
    const h = await startHarness({ env: fleet().env });
    try {
      for (const name of ['h1', 'h2', 'h4']) await h.store.create('server', fleet().server(name));
      await h.store.create('cluster', { name: 'c1', members: ['h1', 'h2'] });
      await h.store.create('platform', platform);
      await h.store.create('site', { domain: SECURE, platform: 'wp', dbServer: 'h4' });
      const inventory = await h.store.dump();
      const workflows = await h.workflowIds();

      for (const token of [null, 'wrong-token', `${h.token}x`]) {
        for (const [method, path] of [
          ['GET', '/v1/sites'],
          ['POST', `/v1/sites/${SECURE}/install`],
          ['DELETE', `/v1/sites/${SECURE}`],
        ] as const) {
          const res = await h.request(method, path, undefined, { token });
          assert.equal(res.status, 401, `${method} ${path} with token ${String(token)}`);
        }
      }
      for (const domain of HOSTILE) {
        const created = await h.request('POST', '/v1/sites', { domain, platform: 'wp', dbServer: 'h4' });
        assert.equal(created.status, 400, `POST /v1/sites ${domain}`);
        assert.deepEqual(
          (created.body as { fields: { field: string }[] }).fields.map((f) => f.field),
          ['domain'],
        );
        const install = await h.request('POST', `/v1/sites/${encodeURIComponent(domain)}/install`);
        assert.equal(install.status, 400, `POST /v1/sites/${encodeURIComponent(domain)}/install`);
      }
      assert.deepEqual(await h.store.dump(), inventory, 'the inventory is unchanged');
      assert.deepEqual(await h.workflowIds(), workflows, 'no workflow was started');
    } finally {
      await h.close();
    }
  });

  test('no database or admin password in any workflow history or in the worker output', async () => {
    const histories = await everyHistoryText(fleet().client);
    assert.ok(
      histories.some((h) => h.text.includes(SECURE)),
      'payloads are decoded (positive control)',
    );
    const texts = [
      ...histories.map((h) => ({ name: `history ${h.workflowId}`, text: h.text })),
      { name: 'worker output', text: fleet().workerOutput() },
    ];
    assert.deepEqual(secretLeaks(texts, await secretsOf([SECURE])), []);
  });
});
