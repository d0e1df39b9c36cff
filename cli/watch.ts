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

function summarizeResult(result: unknown): string | undefined {
  if (result === undefined || result === null) return undefined;
  const text = JSON.stringify(result);
  return text.length > 400 ? `${text.slice(0, 400)}...` : text;
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
): Promise<{ ok: boolean; view: OperationView }> {
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
      const result = summarizeResult(view.result);
      if (ok && result) opts.print(`${p}  result: ${result}`);
      if (view.effectError) opts.print(`${p}  inventory not updated: ${view.effectError}`);
      return { ok, view };
    }
    await sleep(pollMs);
  }
}
