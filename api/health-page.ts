/**
 * The fleet health page (`GET /fleet`): for every pack and cluster in the inventory, the latest completed
 * VerifyClusterNodes run as two tables — nodes × checks and sites × nodes — with links to the run in the Web UI.
 *
 * Authentication: the page shows data only to a caller holding the API token, given either as
 * `Authorization: Bearer TOKEN` (scripts) or once in a sign-in form (browsers), which sets an HttpOnly,
 * SameSite=Strict cookie scoped to the page. The cookie never holds the token: it holds an expiry and an HMAC of it
 * keyed with the token, so it only opens this read-only page, expires, and dies when the token is rotated. The token
 * is never put in a URL (no history, logs or Referer leaks). Without a credential the page is the sign-in form only.
 *
 * The page is rendered on the server with no script at all, from nunjucks templates that escape every value
 * (api/health-page-view.ts, templates/health-page/), and a Content-Security-Policy forbids scripts, frames and
 * foreign form targets.
 */
import { createHmac } from 'node:crypto';
import type { WorkflowClient } from '@temporalio/client';
import express, { type Request, type Response, type Router } from 'express';
import type { Logger } from 'pino';
import type { Settings } from '../config/settings';
import { WORKFLOW_TYPES, workflowIds } from '../domain/operations';
import { CLUSTER } from '../domain/search-attributes';
import type { InventoryStore } from '../inventory/store';
import type { VerifyReport } from '../domain/verify-report';
import { tokenMatches } from './auth';
import { webUiUrl } from './operations';
import { messageOf } from '../common/error-message';
import type { GroupHealth, FleetHealth } from './health-page-view';
import { CONTENT_SECURITY_POLICY, renderFleetHealthPage, renderSignInPage } from './health-page-view';

/** How long a browser stays signed in to the page. @default 12 hours */
export const SESSION_SECONDS = 12 * 60 * 60;
/** The cookie that carries a signed-in browser's session. */
export const SESSION_COOKIE = 'sitefleet_fleet_session';
/** How long fetching one group's run and result may take before the page shows the group without it. @default 5000 */
const FETCH_TIMEOUT_MS = 5_000;
/** How many visibility entries are read per group to find the newest completed run. @default 50 */
const RUNS_SCANNED = 50;
/** Groups fetched at once. @default 8 */
const PARALLEL_GROUPS = 8;

export { CONTENT_SECURITY_POLICY, renderFleetHealthPage, renderSignInPage } from './health-page-view';
export type { FleetHealth, GroupHealth, LatestRun } from './health-page-view';

const visibilityQuery = (kind: 'pack' | 'cluster', name: string): string =>
  // Names are resource names ([a-z0-9_-]), so they need no quoting beyond the double quotes.
  `WorkflowType = "${WORKFLOW_TYPES.verifyClusterNodes}" AND ExecutionStatus = "Completed" AND ` +
  `${CLUSTER.name} = "${name}" AND WorkflowId STARTS_WITH "${workflowIds.verify(kind, name)}"`;

async function groupHealth(
  workflow: WorkflowClient,
  settings: Pick<Settings, 'uiUrl' | 'namespace'>,
  group: { kind: 'pack' | 'cluster'; name: string; members: string[] },
): Promise<GroupHealth> {
  const health: GroupHealth = { ...group };
  const prefix = workflowIds.verify(group.kind, group.name);
  try {
    await workflow.withDeadline(Date.now() + FETCH_TIMEOUT_MS, async () => {
      // Runs started by the API (`verify/cluster/web`) and by a schedule (`verify/cluster/web-2025-...`). Visibility
      // lists closed runs newest first; the newest close time is taken anyway, from the first entries.
      let newest: { workflowId: string; runId: string; closeTime: Date } | undefined;
      let scanned = 0;
      for await (const wf of workflow.list({
        query: visibilityQuery(group.kind, group.name),
        pageSize: RUNS_SCANNED,
      })) {
        // STARTS_WITH also matches `verify/cluster/web2`: keep this group's own ids only.
        const own = wf.workflowId === prefix || /^-\d{4}-\d\d-\d\dT/.test(wf.workflowId.slice(prefix.length));
        if (own && wf.closeTime && (!newest || wf.closeTime > newest.closeTime)) {
          newest = { workflowId: wf.workflowId, runId: wf.runId, closeTime: wf.closeTime };
        }
        if (++scanned >= RUNS_SCANNED) break;
      }
      if (!newest) return;
      health.run = {
        workflowId: newest.workflowId,
        runId: newest.runId,
        closedAt: newest.closeTime.toISOString(),
        webUiUrl: webUiUrl(settings, newest.workflowId, newest.runId),
      };
      health.report = (await workflow
        .getHandle(newest.workflowId, newest.runId, { followRuns: false })
        .result()) as VerifyReport;
    });
  } catch (err) {
    health.error = `could not read the latest verification from Temporal: ${messageOf(err)}`;
  }
  return health;
}

/** The latest completed verification of every pack and cluster in the inventory. */
export async function collectFleetHealth(
  store: InventoryStore,
  workflow: WorkflowClient,
  settings: Pick<Settings, 'uiUrl' | 'namespace'>,
  now: Date = new Date(),
): Promise<FleetHealth> {
  const groups = [
    ...(await store.list('cluster')).map((c) => ({ kind: 'cluster' as const, name: c.name, members: c.members })),
    ...(await store.list('pack')).map((p) => ({
      kind: 'pack' as const,
      name: p.name,
      members: [p.master, ...p.slaves],
    })),
  ];
  const result: GroupHealth[] = [];
  for (let i = 0; i < groups.length; i += PARALLEL_GROUPS) {
    result.push(
      ...(await Promise.all(groups.slice(i, i + PARALLEL_GROUPS).map((g) => groupHealth(workflow, settings, g)))),
    );
  }
  const allRuns = `WorkflowType = "${WORKFLOW_TYPES.verifyClusterNodes}"`;
  return {
    generatedAt: now.toISOString(),
    uiUrl: settings.uiUrl,
    allRunsUrl: `${settings.uiUrl}/namespaces/${encodeURIComponent(settings.namespace)}/workflows?query=${encodeURIComponent(allRuns)}`,
    groups: result,
  };
}

// ---- sessions ----

const sessionMac = (token: string, expires: number): string =>
  createHmac('sha256', token).update(`sitefleet-fleet-page:v1:${expires}`).digest('base64url');

/** A session value for the cookie: `EXPIRES.MAC`, valid until `expires` (seconds since the epoch). */
export function createSessionValue(token: string, now: Date = new Date()): string {
  const expires = Math.floor(now.getTime() / 1000) + SESSION_SECONDS;
  return `${expires}.${sessionMac(token, expires)}`;
}

export function sessionValid(value: string | undefined, token: string, now: Date = new Date()): boolean {
  const match = /^(\d{1,12})\.([A-Za-z0-9_-]{43})$/.exec(value ?? '');
  if (!match) return false;
  const expires = Number(match[1]);
  const nowSeconds = now.getTime() / 1000;
  if (expires <= nowSeconds || expires > nowSeconds + SESSION_SECONDS + 60) return false;
  return tokenMatches(match[2] ?? '', sessionMac(token, expires));
}

function cookieValue(req: Request, name: string): string | undefined {
  for (const part of (req.get('cookie') ?? '').split(';')) {
    const eq = part.indexOf('=');
    if (eq > 0 && part.slice(0, eq).trim() === name) return part.slice(eq + 1).trim();
  }
  return undefined;
}

function bearerOf(req: Request): string | undefined {
  return /^Bearer ([^\s]+)$/i.exec(req.get('authorization') ?? '')?.[1];
}

// ---- routes ----

export interface HealthPageDeps {
  store: InventoryStore;
  workflow: WorkflowClient;
  settings: Pick<Settings, 'uiUrl' | 'namespace'>;
  token: string;
  log: Logger;
}

function sendHtml(res: Response, status: number, body: string): void {
  res
    .status(status)
    .set({
      'Content-Type': 'text/html; charset=utf-8',
      'Cache-Control': 'no-store',
      'Content-Security-Policy': CONTENT_SECURITY_POLICY,
      'X-Content-Type-Options': 'nosniff',
      'X-Frame-Options': 'DENY',
      'Referrer-Policy': 'no-referrer',
    })
    .send(body);
}

/**
 * The page's routes, mounted with `app.use('/fleet', healthPageRouter(deps))`:
 * - `GET /` the page (with a bearer token or a session cookie) or the sign-in form (401);
 * - `POST /session` signs in (form field `token`), then redirects to the page;
 * - `POST /session/end` signs out.
 * HTML, not part of the JSON API under /v1 (and not in its OpenAPI document).
 */
export function healthPageRouter(deps: HealthPageDeps): Router {
  const router = express.Router();
  const base = (req: Request) => req.baseUrl || '/';
  const cookie = (req: Request, value: string, maxAge: number) =>
    `${SESSION_COOKIE}=${value}; Path=${base(req)}; Max-Age=${maxAge}; HttpOnly; SameSite=Strict` +
    (req.secure ? '; Secure' : '');

  router.get('/', async (req, res) => {
    const bearer = bearerOf(req);
    const viaBearer = bearer !== undefined && tokenMatches(bearer, deps.token);
    if (!viaBearer && !sessionValid(cookieValue(req, SESSION_COOKIE), deps.token)) {
      res.set('WWW-Authenticate', 'Bearer realm="sitefleet"');
      return sendHtml(
        res,
        401,
        renderSignInPage(`${req.baseUrl}/session`, bearer !== undefined ? 'wrong API token' : undefined),
      );
    }
    const health = await collectFleetHealth(deps.store, deps.workflow, deps.settings);
    for (const g of health.groups) {
      if (g.error) deps.log.warn({ group: `${g.kind}/${g.name}`, error: g.error }, 'fleet health page');
    }
    sendHtml(res, 200, renderFleetHealthPage(health, viaBearer ? {} : { signOutAction: `${req.baseUrl}/session/end` }));
  });

  router.post('/session', express.urlencoded({ extended: false, limit: '4kb' }), (req, res) => {
    const given = (req.body as Record<string, unknown> | undefined)?.token;
    if (typeof given !== 'string' || !tokenMatches(given.trim(), deps.token)) {
      return sendHtml(res, 401, renderSignInPage(`${req.baseUrl}/session`, 'wrong API token'));
    }
    res.set('Set-Cookie', cookie(req, createSessionValue(deps.token), SESSION_SECONDS));
    res.set('Cache-Control', 'no-store').redirect(303, base(req));
  });

  router.post('/session/end', (req, res) => {
    res.set('Set-Cookie', cookie(req, '', 0));
    res.set('Cache-Control', 'no-store').redirect(303, base(req));
  });

  return router;
}
