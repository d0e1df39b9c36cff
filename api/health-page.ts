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
 * The page is rendered on the server with no script at all; every value goes through one escaping template
 * (`html`), and a Content-Security-Policy forbids scripts, frames and foreign form targets.
 */
import { createHash, createHmac } from 'node:crypto';
import type { WorkflowClient } from '@temporalio/client';
import express, { type Request, type Response, type Router } from 'express';
import type { Logger } from 'pino';
import type { Settings } from '../config/settings';
import { displayDomain } from '../domain/fields';
import { WORKFLOW_TYPES, workflowIds } from '../domain/operations';
import { CLUSTER } from '../domain/search-attributes';
import type { InventoryStore } from '../inventory/store';
import type { NodeCheck, VerifyReport } from '../domain/verify-report';
import { tokenMatches } from './auth';
import { webUiUrl } from './operations';
import { messageOf } from '../common/error-message';

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
/** The page reloads itself this often. @default 60 */
const REFRESH_SECONDS = 60;

// ---- escaping ----

/** Markup that is already safe: built by `html`, never from raw input. */
export class SafeHtml {
  constructor(readonly value: string) {}
  toString(): string {
    return this.value;
  }
}

const ESCAPES: Record<string, string> = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' };

/** Escapes text for HTML element content and quoted attribute values. */
export function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => ESCAPES[c] ?? c);
}

function interpolate(value: unknown): string {
  if (value instanceof SafeHtml) return value.value;
  if (Array.isArray(value)) return value.map(interpolate).join('');
  if (value === undefined || value === null || value === false) return '';
  return escapeHtml(String(value));
}

/** A template whose every interpolated value is escaped, unless it is SafeHtml (or an array of it). */
export function html(strings: TemplateStringsArray, ...values: unknown[]): SafeHtml {
  let out = strings[0] ?? '';
  values.forEach((value, i) => {
    out += interpolate(value) + (strings[i + 1] ?? '');
  });
  return new SafeHtml(out);
}

/** Only http(s) links are rendered: a misconfigured UI URL must not become a `javascript:` link. */
const linkable = (url: string): boolean => /^https?:\/\//i.test(url);

// ---- what the page shows ----

export interface LatestRun {
  workflowId: string;
  runId: string;
  closedAt: string;
  webUiUrl: string;
}

export interface GroupHealth {
  kind: 'pack' | 'cluster';
  name: string;
  /** Members in the inventory now (the report lists the members at the time of the run). */
  members: string[];
  run?: LatestRun;
  report?: VerifyReport;
  /** Why the run or its result could not be read. */
  error?: string;
}

export interface FleetHealth {
  generatedAt: string;
  uiUrl: string;
  /** The Web UI's list of every verification run. */
  allRunsUrl: string;
  groups: GroupHealth[];
}

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

// ---- rendering ----

const STYLE = `
body { font: 14px/1.4 system-ui, sans-serif; margin: 1.5rem; color: #1b1f24; background: #f6f8fa; }
h1 { font-size: 1.4rem; margin: 0 0 .25rem; } h2 { font-size: 1.15rem; margin: 0 0 .25rem; }
header { display: flex; justify-content: space-between; align-items: baseline; gap: 1rem; flex-wrap: wrap; }
.meta { color: #57606a; } a { color: #0969da; }
section.group { background: #fff; border: 1px solid #d0d7de; border-radius: 6px; padding: 1rem; margin: 1rem 0; }
section.group.bad { border-left: 6px solid #cf222e; } section.group.good { border-left: 6px solid #1a7f37; }
section.group.unknown { border-left: 6px solid #8c959f; }
.badge { display: inline-block; padding: 0 .5rem; border-radius: 1rem; font-weight: 600; font-size: .85rem; }
.badge.good { background: #dafbe1; color: #1a7f37; } .badge.bad { background: #ffebe9; color: #cf222e; }
.badge.unknown { background: #eaeef2; color: #57606a; }
table { border-collapse: collapse; margin: .5rem 1.5rem .75rem 0; display: inline-table; vertical-align: top; }
caption { text-align: left; font-weight: 600; padding-bottom: .25rem; }
th, td { border: 1px solid #d0d7de; padding: .25rem .5rem; text-align: center; white-space: nowrap; }
th[scope=row] { text-align: left; }
td.ok { background: #dafbe1; color: #1a7f37; } td.fail { background: #ffebe9; color: #cf222e; font-weight: 600; }
td.na { color: #8c959f; } td[title] { cursor: help; }
ul.problems { margin: .25rem 0; padding-left: 1.25rem; } ul.problems li { margin: .15rem 0; }
code { background: #eaeef2; padding: 0 .25rem; border-radius: 3px; }
form.inline { display: inline; } .error { color: #cf222e; font-weight: 600; }
form.signin { background: #fff; border: 1px solid #d0d7de; border-radius: 6px; padding: 1rem; max-width: 32rem; }
form.signin input[type=password] { width: 100%; box-sizing: border-box; padding: .4rem; margin: .5rem 0; }
`;
const STYLE_HASH = `'sha256-${createHash('sha256').update(STYLE).digest('base64')}'`;
/** Built outside the `html` templates so that no formatter can change the hashed content. */
const STYLE_ELEMENT = new SafeHtml(`<style>${STYLE}</style>`);

/** No script, no frames, forms post to this origin only, styles only from the page's own style block. */
export const CONTENT_SECURITY_POLICY = [
  "default-src 'none'",
  `style-src ${STYLE_HASH}`,
  "form-action 'self'",
  "frame-ancestors 'none'",
  "base-uri 'none'",
].join('; ');

function page(title: string, body: SafeHtml, opts: { refresh?: boolean } = {}): string {
  return html`<!doctype html>
    <html lang="en">
      <head>
        <meta charset="utf-8" />
        <meta name="viewport" content="width=device-width, initial-scale=1" />
        ${opts.refresh ? html`<meta http-equiv="refresh" content="${REFRESH_SECONDS}" />` : ''}
        <title>${title}</title>
        ${STYLE_ELEMENT}
      </head>
      <body>
        ${body}
      </body>
    </html> `.value;
}

function ago(iso: string, now: Date): string {
  const s = Math.max(0, Math.round((now.getTime() - new Date(iso).getTime()) / 1000));
  if (s < 90) return `${s} s ago`;
  if (s < 90 * 60) return `${Math.round(s / 60)} min ago`;
  if (s < 36 * 3600) return `${Math.round(s / 3600)} h ago`;
  return `${Math.round(s / 86400)} days ago`;
}

/** A long detail (an nginx error page, a config test's output) cut for the problem list; the tooltip has it all. */
const shorten = (text: string, max = 240): string => (text.length > max ? `${text.slice(0, max)}…` : text);

const isProbe = (c: NodeCheck): boolean => c.name.startsWith('probe:');

/** Names in order of first appearance. */
function uniqueInOrder(names: string[]): string[] {
  return [...new Set(names)];
}

function cell(check: NodeCheck | undefined, missing: string): SafeHtml {
  if (!check) return html`<td class="na" title="${missing}">–</td>`;
  return check.ok
    ? html`<td class="ok" title="${check.detail}">ok</td>`
    : html`<td class="fail" title="${check.detail}">FAIL</td>`;
}

function groupStatus(g: GroupHealth): 'good' | 'bad' | 'unknown' {
  if (!g.report) return 'unknown';
  return g.report.ok ? 'good' : 'bad';
}

function renderGroup(g: GroupHealth, now: Date): SafeHtml {
  const status = groupStatus(g);
  const label = { good: 'healthy', bad: 'problems', unknown: g.error ? 'unknown' : 'not verified yet' }[status];
  const id = `${g.kind}-${g.name}`;
  const head = html`<h2>${g.kind} ${g.name} <span class="badge ${status}">${label}</span></h2>`;
  const verifyHint = html`<p class="meta">
    Run <code>sitefleet verify ${g.kind} ${g.name}</code> (or <code>POST /v1/${g.kind}s/${g.name}/verify</code>) to
    check every node.
  </p>`;
  if (!g.run || !g.report) {
    return html`<section class="group ${status}" id="${id}" data-group="${id}">
      ${head}
      ${g.error ? html`<p class="error">${g.error}</p>` : html`<p class="meta">No completed verification yet.</p>`}
      ${verifyHint}
    </section>`;
  }
  const { run, report } = g;
  const nodes = report.nodes.map((n) => n.server);
  const byNode = new Map(report.nodes.map((n) => [n.server, n]));
  const checkNames = uniqueInOrder(report.nodes.flatMap((n) => n.checks.filter((c) => !isProbe(c)).map((c) => c.name)));
  const domains = uniqueInOrder(
    report.nodes.flatMap((n) => n.checks.filter(isProbe).map((c) => c.name.slice('probe:'.length))),
  );
  const find = (node: string, name: string) => byNode.get(node)?.checks.find((c) => c.name === name);
  const unreachable = (node: string) => byNode.get(node)?.checks.length === 1 && !find(node, 'ssh')?.ok;
  const missingText = (node: string) =>
    unreachable(node) ? `not checked: ${node} was unreachable` : `does not apply to ${node}`;

  const runLink = linkable(run.webUiUrl)
    ? html`<a href="${run.webUiUrl}" target="_blank" rel="noopener noreferrer">${run.workflowId}</a>`
    : html`${run.workflowId}`;
  const membersChanged = [...g.members].sort().join(',') !== [...nodes].sort().join(',');

  const checksTable = html`<table class="checks" data-table="checks">
    <caption>
      Nodes × checks
    </caption>
    <thead>
      <tr>
        <th scope="col">node</th>
        ${checkNames.map((c) => html`<th scope="col">${c}</th>`)}
      </tr>
    </thead>
    <tbody>
      ${nodes.map(
        (node) =>
          html`<tr data-node="${node}">
            <th scope="row">${node}</th>
            ${checkNames.map((c) => cell(find(node, c), missingText(node)))}
          </tr> `,
      )}
    </tbody>
  </table>`;

  const sitesTable =
    domains.length === 0
      ? html`<p class="meta">No sites on this ${g.kind} at the time of the run.</p>`
      : html`<table class="sites" data-table="sites">
          <caption>
            Sites × nodes (HTTP probe through each node)
          </caption>
          <thead>
            <tr>
              <th scope="col">site</th>
              ${nodes.map((n) => html`<th scope="col">${n}</th>`)}
            </tr>
          </thead>
          <tbody>
            ${domains.map(
              (domain) =>
                html`<tr data-site="${domain}">
                  <th scope="row">${displayDomain(domain)}</th>
                  ${nodes.map((node) =>
                    cell(
                      find(node, `probe:${domain}`),
                      unreachable(node) ? `not probed: ${node} was unreachable` : `not probed on ${node}`,
                    ),
                  )}
                </tr> `,
            )}
          </tbody>
        </table>`;

  const problems = report.nodes.flatMap((n) =>
    n.checks.filter((c) => !c.ok).map((c) => ({ node: n.server, check: c })),
  );
  return html`<section class="group ${status}" id="${id}" data-group="${id}">
    ${head}
    <p class="meta">
      Latest verification ${runLink} (run <code>${run.runId}</code>), checked ${report.checkedAt}
      (${ago(report.checkedAt, now)}), finished ${run.closedAt}.
    </p>
    ${membersChanged
      ? html`<p class="error">Members changed since this run (now: ${g.members.join(', ')}); verify again.</p>`
      : ''}
    ${checksTable} ${sitesTable}
    ${problems.length > 0
      ? html`<h3>Problems</h3>
          <ul class="problems">
            ${problems.map(
              (p) =>
                html`<li title="${p.check.detail}">
                  <strong>${p.node}</strong> <code>${p.check.name}</code>: ${shorten(p.check.detail)}
                </li>`,
            )}
          </ul>`
      : ''}
    ${status === 'bad' ? verifyHint : ''}
  </section>`;
}

/** The page with data: one section per group. */
export function renderFleetHealthPage(health: FleetHealth, opts: { signOutAction?: string } = {}): string {
  const now = new Date(health.generatedAt);
  const counts = { good: 0, bad: 0, unknown: 0 };
  for (const g of health.groups) counts[groupStatus(g)]++;
  const uiLink = linkable(health.uiUrl)
    ? html`<a href="${health.uiUrl}" target="_blank" rel="noopener noreferrer">Temporal Web UI</a> ·
        <a href="${health.allRunsUrl}" target="_blank" rel="noopener noreferrer">every verification run</a>`
    : '';
  const signOut = opts.signOutAction
    ? html`<form class="inline" method="post" action="${opts.signOutAction}">
        <button type="submit">Sign out</button>
      </form>`
    : '';
  const body = html`<header>
      <h1>sitefleet fleet health</h1>
      ${signOut}
    </header>
    <p class="meta">
      ${health.groups.length} group(s): ${counts.good} healthy, ${counts.bad} with problems, ${counts.unknown} not
      verified · generated ${health.generatedAt} · ${uiLink}
    </p>
    ${health.groups.length === 0 ? html`<p>No pack or cluster in the inventory yet.</p>` : ''}
    ${health.groups.map((g) => renderGroup(g, now))}
    <p class="meta">
      Each group shows its latest completed VerifyClusterNodes run; hover a cell for the check's detail. The page
      reloads every ${REFRESH_SECONDS} s.
    </p>`;
  return page('sitefleet fleet health', body, { refresh: true });
}

/** The sign-in form: no inventory data at all. */
export function renderSignInPage(action: string, error?: string): string {
  const body = html`<h1>sitefleet fleet health</h1>
    <form class="signin" method="post" action="${action}">
      <p>Sign in with the sitefleet API token (the file <code>api-token</code> in the data directory).</p>
      ${error ? html`<p class="error" role="alert">${error}</p>` : ''}
      <label for="token">API token</label>
      <input id="token" name="token" type="password" autocomplete="current-password" required autofocus />
      <button type="submit">Sign in</button>
    </form>`;
  return page('sitefleet fleet health: sign in', body);
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
