/**
 * The fleet health page's HTML (api/health-page.ts serves it): what each group shows, computed here, rendered by
 * the nunjucks templates in templates/health-page/ with autoescaping on, so every value from reports, the
 * inventory and settings is escaped; only the style element (a constant, hashed for the CSP) is marked safe.
 */
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import nunjucks from 'nunjucks';
import { displayDomain } from '../domain/fields';
import type { NodeCheck, VerifyReport } from '../domain/verify-report';

/** The page reloads itself this often. @default 60 */
const REFRESH_SECONDS = 60;

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
const STYLE_ELEMENT = `<style>${STYLE}</style>`;

/** No script, no frames, forms post to this origin only, styles only from the page's own style block. */
export const CONTENT_SECURITY_POLICY = [
  "default-src 'none'",
  `style-src ${STYLE_HASH}`,
  "form-action 'self'",
  "frame-ancestors 'none'",
  "base-uri 'none'",
].join('; ');

function templatesDir(): string {
  // From source (tsx) the templates sit next to api/; from a build (dist/js/api) further up.
  for (const up of [['..'], ['..', '..'], ['..', '..', '..']]) {
    const dir = join(__dirname, ...up, 'templates');
    if (existsSync(join(dir, 'health-page', 'page.html.njk'))) return dir;
  }
  throw new Error(`templates directory not found near ${__dirname}`);
}

let environment: nunjucks.Environment | undefined;

function render(template: string, context: object): string {
  environment ??= new nunjucks.Environment(new nunjucks.FileSystemLoader(templatesDir()), {
    autoescape: true,
    throwOnUndefined: false,
  });
  return environment.render(`health-page/${template}`, {
    ...context,
    styleElement: STYLE_ELEMENT,
  });
}

/** Only http(s) links are rendered: a misconfigured UI URL must not become a `javascript:` link. */
const linkable = (url: string): boolean => /^https?:\/\//i.test(url);

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

interface CellView {
  cls: 'ok' | 'fail' | 'na';
  title: string;
  text: string;
}

function cell(check: NodeCheck | undefined, missing: string): CellView {
  if (!check) return { cls: 'na', title: missing, text: '–' };
  return check.ok ? { cls: 'ok', title: check.detail, text: 'ok' } : { cls: 'fail', title: check.detail, text: 'FAIL' };
}

function groupStatus(g: GroupHealth): 'good' | 'bad' | 'unknown' {
  if (!g.report) return 'unknown';
  return g.report.ok ? 'good' : 'bad';
}

/** What the template shows of one group. */
function groupView(g: GroupHealth, now: Date) {
  const status = groupStatus(g);
  const base = {
    kind: g.kind,
    name: g.name,
    id: `${g.kind}-${g.name}`,
    status,
    label: { good: 'healthy', bad: 'problems', unknown: g.error ? 'unknown' : 'not verified yet' }[status],
    error: g.error,
  };
  if (!g.run || !g.report) return base;
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
  return {
    ...base,
    run: { ...run, link: linkable(run.webUiUrl) ? run.webUiUrl : undefined },
    checkedAt: report.checkedAt,
    ago: ago(report.checkedAt, now),
    members: g.members,
    membersChanged: [...g.members].sort().join(',') !== [...nodes].sort().join(','),
    nodes,
    checkNames,
    checkRows: nodes.map((node) => ({ node, cells: checkNames.map((c) => cell(find(node, c), missingText(node))) })),
    siteRows: domains.map((domain) => ({
      domain,
      display: displayDomain(domain),
      cells: nodes.map((node) =>
        cell(
          find(node, `probe:${domain}`),
          unreachable(node) ? `not probed: ${node} was unreachable` : `not probed on ${node}`,
        ),
      ),
    })),
    problems: report.nodes.flatMap((n) =>
      n.checks
        .filter((c) => !c.ok)
        .map((c) => ({ node: n.server, check: c.name, detail: c.detail, short: shorten(c.detail) })),
    ),
  };
}

/** The page with data: one section per group. */
export function renderFleetHealthPage(health: FleetHealth, opts: { signOutAction?: string } = {}): string {
  const now = new Date(health.generatedAt);
  const counts = { good: 0, bad: 0, unknown: 0 };
  for (const g of health.groups) counts[groupStatus(g)]++;
  return render('fleet.html.njk', {
    refreshSeconds: REFRESH_SECONDS,
    generatedAt: health.generatedAt,
    uiUrl: linkable(health.uiUrl) ? health.uiUrl : undefined,
    allRunsUrl: health.allRunsUrl,
    signOutAction: opts.signOutAction,
    counts,
    groups: health.groups.map((g) => groupView(g, now)),
  });
}

/** The sign-in form: no inventory data at all. */
export function renderSignInPage(action: string, error?: string): string {
  return render('sign-in.html.njk', { action, error });
}
