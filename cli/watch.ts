/**
 * Follows a running operation: polls GET /v1/operations/:id and prints a line whenever the phase or a node's
 * state or step changes, then the outcome. The operation itself goes on if the CLI stops watching.
 */
import type { OperationStarted, OperationView } from '../api/schemas';
import type { ApiClient } from './api-client';

export interface WatchOptions {
  /** @default 1000 */
  pollMs?: number;
  /** Prefix for every line, to tell concurrent operations apart. */
  prefix?: string;
  print: (line: string) => void;
}

const CLOSED_OK = new Set(['COMPLETED']);

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Operation ids contain "/": sent as they are, the API's route takes the rest of the path. */
export const operationPath = (id: string, runId?: string): string =>
  `/v1/operations/${id.split('/').map(encodeURIComponent).join('/')}${runId ? `?runId=${encodeURIComponent(runId)}` : ''}`;

export function describeStart(op: OperationStarted): string[] {
  return [`started ${op.workflowType} ${op.operationId} (run ${op.runId})`, `  web ui: ${op.webUiUrl}`];
}

/**
 * The problems a completed operation reports in its result (the run completes with its report either way):
 * `node check: detail` for every failed check of a verification (VerifyClusterNodes), every member a resync
 * could not repair (ResyncCluster), every problem of a server inspection (VerifyServer). Empty when `ok` is not
 * false.
 */
export function findingsOf(result: unknown): string[] {
  if (typeof result !== 'object' || result === null) return [];
  const r = result as {
    ok?: unknown;
    server?: unknown;
    problems?: unknown;
    nodes?: {
      server?: string;
      ok?: boolean;
      error?: string;
      checks?: { name: string; ok: boolean; detail: string }[];
    }[];
  };
  if (r.ok !== false) return [];
  const out: string[] = [];
  if (Array.isArray(r.problems)) for (const p of r.problems) out.push(`${String(r.server)}: ${String(p)}`);
  for (const n of Array.isArray(r.nodes) ? r.nodes : []) {
    if (n.ok !== false) continue;
    const failed = (n.checks ?? []).filter((c) => !c.ok);
    for (const c of failed) out.push(`${n.server} ${c.name}: ${c.detail}`);
    if (failed.length === 0) out.push(`${n.server}: ${n.error ?? 'failed'}`);
  }
  return out.length > 0 ? out : ['the result says ok: false'];
}

/**
 * Polls until the operation closes.
 * @returns the final view; `ok` is true only when it COMPLETED
 */
export async function watchOperation(
  api: ApiClient,
  operationId: string,
  runId: string | undefined,
  opts: WatchOptions,
): Promise<{ ok: boolean; view: OperationView; findings: string[] }> {
  const pollMs = opts.pollMs ?? 1000;
  const p = opts.prefix ?? '';
  const seen = new Map<string, string>();
  let phase = '';
  let waitingNote = '';
  const started = Date.now();
  for (;;) {
    const view = await api.get<OperationView>(operationPath(operationId, runId));
    if (view.progress) {
      waitingNote = '';
      if (view.progress.phase !== phase) {
        phase = view.progress.phase;
        opts.print(`${p}phase: ${phase}`);
      }
      const width = Math.max(...Object.keys(view.progress.nodes).map((n) => n.length), 4);
      for (const [node, np] of Object.entries(view.progress.nodes).sort(([a], [b]) => a.localeCompare(b))) {
        const line = `${node.padEnd(width)}  ${np.state.padEnd(12)} ${np.step}${np.error ? ` — ${np.error}` : ''}`;
        if (seen.get(node) !== line) {
          seen.set(node, line);
          opts.print(`${p}  ${line}`);
        }
      }
    } else if (view.status === 'RUNNING' && view.progressError && view.progressError !== waitingNote) {
      waitingNote = view.progressError;
      opts.print(`${p}waiting: ${view.progressError}`);
    }
    if (view.status !== 'RUNNING') {
      const secs = ((Date.now() - started) / 1000).toFixed(1);
      const ok = CLOSED_OK.has(view.status);
      opts.print(`${p}${view.workflowType} ${operationId}: ${view.status} (watched ${secs}s)`);
      if (!ok && view.failure) opts.print(`${p}  failure: ${view.failure}`);
      const findings = ok ? findingsOf(view.result) : [];
      if (ok && view.result !== undefined && view.result !== null && findings.length === 0) {
        opts.print(`${p}  result: ${JSON.stringify(view.result)}`);
      }
      if (findings.length > 0) {
        opts.print(`${p}  PROBLEMS FOUND (${findings.length}):`);
        for (const f of findings) opts.print(`${p}    ${f}`);
      }
      if (view.effectError) opts.print(`${p}  inventory not updated: ${view.effectError}`);
      return { ok, view, findings };
    }
    await sleep(pollMs);
  }
}
