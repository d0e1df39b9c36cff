/**
 * The fleet health page, end to end: a real Temporal dev server, the real sitefleet worker, the API, and test hosts
 * (a 3-node nginx cluster with WordPress and a MariaDB host). Verifications run through the API; the page is read
 * in headless Chromium after signing in with the token, and a screenshot goes to test-artifacts/health-page.png.
 */
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { chromium, type BrowserContext } from 'playwright-core';
import { closeAllConnections } from '../../activities/transport/ssh';
import {
  createSessionValue,
  renderFleetHealthPage,
  SESSION_COOKIE,
  sessionValid,
  type FleetHealth,
} from '../../api/health-page';
import { serverInventorySchema } from '../../domain/model';
import type { Bed } from '../../testbed';
import { startTestBed, stopTestBed } from '../support/testbed';
import { startTestTemporal } from '../support/temporal';
import { startTestWorker, type RunningWorker } from '../support/worker';
import { startHarness, type Harness } from './harness';

const ARTIFACTS = resolve(__dirname, '..', '..', 'test-artifacts');
const SCREENSHOT = join(ARTIFACTS, 'health-page.png');
const DOMAIN = 'blog.example.com';

void describe('fleet health page: rendering', () => {
  void test('escapes every value from reports and settings, and renders no script', () => {
    const evil = '<img src=x onerror=alert(1)>"\'&';
    const health: FleetHealth = {
      generatedAt: '2025-01-01T00:00:00.000Z',
      uiUrl: 'javascript:alert(1)',
      allRunsUrl: 'javascript:alert(2)',
      groups: [
        {
          kind: 'cluster',
          name: 'web',
          members: ['n1'],
          run: { workflowId: `verify/cluster/web`, runId: evil, closedAt: evil, webUiUrl: 'javascript:alert(3)' },
          report: {
            group: 'web',
            kind: 'cluster',
            ok: false,
            checkedAt: '2025-01-01T00:00:00.000Z',
            nodes: [
              {
                server: evil,
                ok: false,
                checks: [
                  { name: evil, ok: false, detail: evil },
                  { name: `probe:${evil}`, ok: false, detail: evil },
                ],
              },
            ],
          },
        },
      ],
    };
    const page = renderFleetHealthPage(health, { signOutAction: '/fleet/session/end' });
    assert.ok(!page.includes('<img'), 'no markup from data');
    assert.ok(!/<script/i.test(page), 'no script');
    assert.ok(!page.includes('javascript:'), 'no javascript: link');
    assert.ok(page.includes('&lt;img src=x onerror=alert(1)&gt;&quot;&#39;&amp;'), 'the value is shown, escaped');
  });

  void test('a session cookie is tied to the token and expires', () => {
    const token = 'a'.repeat(43);
    const now = new Date('2025-01-01T00:00:00Z');
    const value = createSessionValue(token, now);
    assert.ok(!value.includes(token), 'the cookie does not carry the token');
    assert.equal(sessionValid(value, token, now), true);
    assert.equal(sessionValid(value, 'b'.repeat(43), now), false, 'a rotated token ends every session');
    assert.equal(sessionValid(value, token, new Date('2025-01-02T00:00:00Z')), false, 'expired');
    const [expires, mac] = value.split('.');
    assert.equal(sessionValid(`${Number(expires) + 3600}.${mac}`, token, now), false, 'expiry cannot be extended');
    assert.equal(sessionValid(undefined, token, now), false);
  });
});

void describe('fleet health page on a real cluster', () => {
  let env: TestWorkflowEnvironment;
  let h: Harness;
  let worker: RunningWorker;
  let bed: Bed;
  let browser: BrowserContext | undefined;
  let profileDir: string | undefined;

  /** Polls the operation through the API until it closes; fails unless it completed. */
  async function completes(started: { status: number; body: { operationId: string; runId: string } }) {
    assert.equal(started.status, 202, JSON.stringify(started.body));
    const path = `/v1/operations/${started.body.operationId}?runId=${started.body.runId}`;
    for (let i = 0; i < 600; i++) {
      const view = await h.request('GET', path);
      if (view.body.status !== 'RUNNING') {
        assert.equal(view.body.status, 'COMPLETED', JSON.stringify(view.body));
        return view.body as { runId: string; result: unknown };
      }
      await new Promise((r) => setTimeout(r, 500));
    }
    throw new Error(`${started.body.operationId} did not finish`);
  }

  before(async () => {
    [env, bed] = await Promise.all([
      startTestTemporal(),
      startTestBed({
        hosts: [{ roles: ['web-nginx'] }, { roles: ['web-nginx'] }, { roles: ['web-nginx'] }, { roles: ['db'] }],
      }),
    ]);
    h = await startHarness({ env });
    worker = await startTestWorker(env, h.settings.taskQueue);
    const inventory = serverInventorySchema.parse(JSON.parse(readFileSync(bed.paths.inventoryFile, 'utf8')));
    for (const server of inventory.servers) {
      const res = await h.request('POST', '/v1/servers', server);
      assert.equal(res.status, 201, JSON.stringify(res.body));
    }
    for (const [plural, body] of [
      ['clusters', { name: 'web', members: ['h1', 'h2', 'h3'] }],
      [
        'platforms',
        {
          name: 'wp',
          target: { kind: 'cluster', name: 'web' },
          source: { type: 'path', path: '/usr/share/wordpress' },
          profile: 'wordpress',
        },
      ],
      ['sites', { domain: DOMAIN, platform: 'wp', dbServer: 'h4' }],
    ] as const) {
      const res = await h.request('POST', `/v1/${plural}`, body);
      assert.equal(res.status, 201, JSON.stringify(res.body));
    }
    await completes(await h.request('POST', '/v1/platforms/wp/deploy'));
    await completes(await h.request('POST', `/v1/sites/${DOMAIN}/install`));
  });

  after(async () => {
    await browser?.close().catch(() => undefined);
    if (profileDir) rmSync(profileDir, { recursive: true, force: true });
    await worker?.stop().catch(() => undefined);
    await closeAllConnections();
    await h?.close().catch(() => undefined);
    await env?.teardown().catch(() => undefined);
    if (bed) await stopTestBed(bed);
  });

  void test('without the token the page is a sign-in form and shows no fleet data', async () => {
    const tries: { headers?: Record<string, string> }[] = [
      {},
      { headers: { authorization: 'Bearer wrong' } },
      { headers: { cookie: `${SESSION_COOKIE}=${createSessionValue('not-the-token')}` } },
      { headers: { cookie: `${SESSION_COOKIE}=${h.token}` } },
    ];
    for (const t of tries) {
      const res = await fetch(`${h.url}/fleet`, { headers: t.headers ?? {} });
      const body = await res.text();
      assert.equal(res.status, 401, JSON.stringify(t));
      assert.match(body, /name="token"/);
      for (const secret of [DOMAIN, 'data-node', 'cluster web', 'verify/']) assert.ok(!body.includes(secret), secret);
      assert.match(res.headers.get('content-security-policy') ?? '', /default-src 'none'/);
      assert.equal(res.headers.get('cache-control'), 'no-store');
    }
    const wrong = await fetch(`${h.url}/fleet/session`, {
      method: 'POST',
      body: new URLSearchParams({ token: 'wrong' }),
      redirect: 'manual',
    });
    assert.equal(wrong.status, 401);
    assert.equal(wrong.headers.get('set-cookie'), null);
  });

  void test('a group not verified yet says so', async () => {
    const res = await fetch(`${h.url}/fleet`, { headers: { authorization: `Bearer ${h.token}` } });
    assert.equal(res.status, 200);
    const body = await res.text();
    assert.match(body, /cluster web <span class="badge unknown">not verified yet<\/span>/);
  });

  void test('shows the latest verification: a red cell for the broken node and check, links to the run', async () => {
    // A green run first, so the page must pick the newest one.
    await completes(await h.request('POST', '/v1/clusters/web/verify'));
    await bed.exec('h3', ['rm', '-f', '/var/aegir/platforms/wp/wp-login.php']);
    await bed.stopService('h2', 'php8.2-fpm');
    let latest: { runId: string };
    try {
      latest = await completes(await h.request('POST', '/v1/clusters/web/verify'));
    } finally {
      await bed.startService('h2', 'php8.2-fpm');
    }

    profileDir = mkdtempSync(join(tmpdir(), 'sitefleet-chromium-'));
    browser = await chromium.launchPersistentContext(profileDir, {
      executablePath: '/usr/bin/chromium',
      headless: true,
      viewport: { width: 1280, height: 900 },
      args: [
        '--headless',
        '--no-sandbox',
        '--disable-gpu',
        '--no-first-run',
        '--disable-background-networking',
        '--disable-component-update',
        '--disable-sync',
        '--disable-quic',
      ],
    });
    const page = await browser.newPage();
    await page.goto(`${h.url}/fleet`);
    assert.equal(await page.locator('table').count(), 0, 'no data before signing in');
    await page.fill('input[name="token"]', h.token);
    await Promise.all([page.waitForURL(`${h.url}/fleet`), page.click('button[type="submit"]')]);

    const group = page.locator('section[data-group="cluster-web"]');
    assert.match((await group.locator('h2').textContent()) ?? '', /cluster web\s+problems/);
    const headers = await group.locator('table[data-table="checks"] thead th').allTextContents();
    const columnOf: Record<string, number> = Object.fromEntries(headers.slice(1).map((name, i) => [name, i]));
    const checkCell = (node: string, check: string) =>
      group.locator(`table[data-table="checks"] tr[data-node="${node}"] td`).nth(columnOf[check] ?? -1);
    assert.ok(columnOf['drift:wp'] !== undefined, `a drift:wp column (${headers.join(', ')})`);
    assert.ok(columnOf['config-test'] !== undefined, `a config-test column (${headers.join(', ')})`);

    const h3Drift = checkCell('h3', 'drift:wp');
    assert.equal(await h3Drift.getAttribute('class'), 'fail');
    assert.equal(await h3Drift.textContent(), 'FAIL');
    assert.match((await h3Drift.getAttribute('title')) ?? '', /difference/);
    // The page's style passes its own Content-Security-Policy: a red cell is red.
    assert.equal(
      await h3Drift.evaluate((el) => el.ownerDocument.defaultView?.getComputedStyle(el).backgroundColor),
      'rgb(255, 235, 233)',
    );
    for (const node of ['h1', 'h2']) assert.equal(await checkCell(node, 'drift:wp').getAttribute('class'), 'ok');
    for (const node of ['h1', 'h2', 'h3'])
      assert.equal(await checkCell(node, 'config-test').getAttribute('class'), 'ok');

    const siteRow = group.locator(`table[data-table="sites"] tr[data-site="${DOMAIN}"] td`);
    assert.deepEqual(await siteRow.evaluateAll((tds) => tds.map((td) => td.className)), ['ok', 'fail', 'ok']);
    assert.match((await siteRow.nth(1).getAttribute('title')) ?? '', /\S/, 'the failed probe has its detail');

    const runLink = group.locator('a', { hasText: 'verify/cluster/web' });
    assert.equal(
      await runLink.getAttribute('href'),
      `${h.settings.uiUrl}/namespaces/${h.settings.namespace}/workflows/${encodeURIComponent('verify/cluster/web')}/${latest.runId}/history`,
    );
    assert.match((await group.locator('ul.problems').textContent()) ?? '', /h3\s+drift:wp/);

    mkdirSync(ARTIFACTS, { recursive: true });
    await page.screenshot({ path: SCREENSHOT, fullPage: true });
    assert.ok(readFileSync(SCREENSHOT).length > 10_000, 'a screenshot was written');

    // Signing out ends the browser's session.
    await Promise.all([page.waitForURL(`${h.url}/fleet`), page.click('button:has-text("Sign out")')]);
    assert.equal(await page.locator('input[name="token"]').count(), 1);
    assert.equal(await page.locator('table').count(), 0);
  });
});
