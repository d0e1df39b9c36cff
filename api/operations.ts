/**
 * Starts operations as Temporal workflows and reports on them. One operation at a time per resource: the
 * workflow id names the resource and a second start is refused (409) with the running operation named.
 */
import {
  QueryNotRegisteredError,
  QueryRejectedError,
  WorkflowExecutionAlreadyStartedError,
  WorkflowNotFoundError,
  type WorkflowClient,
} from '@temporalio/client';
import type { SearchAttributePair } from '@temporalio/common';
import type { Logger } from 'pino';
import type { Settings } from '../config/settings';
import { progressQuery, type OperationProgress } from '../domain/progress';
import { CLUSTER, PLATFORM, SERVER, SITE } from '../domain/search-attributes';
import type { InventoryStore, OperationRecord, OperationStatus } from '../inventory/store';
import { HttpError } from './errors';
import type { OperationPlan } from './operation-plans';
import type { OperationStarted, OperationView } from './schemas';
import { messageOf } from '../common/error-message';

/** How long a progress query or a result fetch may take before the API answers without it. @default 3000 */
const QUERY_TIMEOUT_MS = 3_000;

export function webUiUrl(settings: Pick<Settings, 'uiUrl' | 'namespace'>, workflowId: string, runId: string): string {
  return `${settings.uiUrl}/namespaces/${encodeURIComponent(settings.namespace)}/workflows/${encodeURIComponent(workflowId)}/${runId}/history`;
}

export function searchAttributesOf(plan: OperationPlan): SearchAttributePair[] {
  const pairs: SearchAttributePair[] = [];
  if (plan.tags.site) pairs.push({ key: SITE, value: plan.tags.site });
  if (plan.tags.platform) pairs.push({ key: PLATFORM, value: plan.tags.platform });
  if (plan.tags.cluster) pairs.push({ key: CLUSTER, value: plan.tags.cluster });
  if (plan.tags.servers.length > 0) pairs.push({ key: SERVER, value: plan.tags.servers });
  return pairs;
}

/** The messages of an error and its causes (a failed workflow's own reason is in the chain), without repeats. */
function errorMessage(err: unknown): string {
  const messages: string[] = [];
  for (let e: unknown = err; e !== undefined && messages.length < 5; e = (e as { cause?: unknown }).cause) {
    const message = messageOf(e);
    if (message && !messages.includes(message)) messages.push(message);
    if (!(e instanceof Error)) break;
  }
  return messages.join(': ');
}

/**
 * Why an operation's progress could not be read, in a plain sentence: Temporal's own text names internal queries
 * (`__stack_trace`, `__temporal_workflow_metadata`) that mean nothing to an operator.
 */
export function progressUnavailable(err: unknown, status: string): string {
  const when = status === 'RUNNING' ? 'yet' : 'recorded';
  if (err instanceof QueryNotRegisteredError) {
    return `no progress ${when}: this operation's workflow does not report progress (it may have been started by an older sitefleet or another program)`;
  }
  if (err instanceof QueryRejectedError) return `no progress ${when}: the workflow refused the progress query`;
  const text = errorMessage(err);
  if (/deadline|timed? ?out|timeout/i.test(text)) {
    return `no progress ${when}: no worker answered within ${QUERY_TIMEOUT_MS / 1000} s (the worker may be busy or restarting)`;
  }
  return `no progress ${when}: the progress could not be read (${text.replace(/\s*Registered queries:.*$/s, '').slice(0, 200)})`;
}

export class OperationService {
  constructor(
    private readonly workflow: WorkflowClient,
    private readonly store: InventoryStore,
    private readonly settings: Settings,
    private readonly log: Logger,
  ) {}

  /** Starts the plan's workflow and records the operation. @throws HttpError 409 when the resource is busy */
  async start(plan: OperationPlan): Promise<OperationStarted> {
    let runId: string;
    try {
      const handle = await this.workflow.start(plan.workflowType, {
        workflowId: plan.workflowId,
        taskQueue: this.settings.taskQueue,
        args: [plan.input],
        workflowIdConflictPolicy: 'FAIL',
        typedSearchAttributes: searchAttributesOf(plan),
        staticSummary: plan.summary,
      });
      runId = handle.firstExecutionRunId;
    } catch (err) {
      if (err instanceof WorkflowExecutionAlreadyStartedError) throw await this.busy(plan);
      throw err;
    }
    await this.store.recordOperation({
      id: plan.workflowId,
      runId,
      type: plan.workflowType,
      resource: plan.resource,
      status: 'RUNNING',
      startedAt: new Date().toISOString(),
      ...(plan.effect ? { effect: plan.effect } : {}),
    });
    this.log.info({ operationId: plan.workflowId, runId, workflowType: plan.workflowType }, 'operation started');
    return {
      operationId: plan.workflowId,
      runId,
      workflowType: plan.workflowType,
      webUiUrl: webUiUrl(this.settings, plan.workflowId, runId),
    };
  }

  /**
   * Why a pack's share counts as set up, or undefined when it does not: decided by the latest run of the pack's
   * operations (SetupPackShare and TeardownPackShare share the workflow id `pack/NAME`). Not set up: no run at all,
   * a completed TeardownPackShare, or a failed SetupPackShare (its compensation removed what it made).
   */
  async packShareSetUp(pack: string): Promise<string | undefined> {
    let d: Awaited<ReturnType<ReturnType<WorkflowClient['getHandle']>['describe']>>;
    try {
      d = await this.workflow.getHandle(`pack/${pack}`).describe();
    } catch (err) {
      if (err instanceof WorkflowNotFoundError) return undefined;
      throw err;
    }
    const status = d.status.name;
    if (d.type === 'TeardownPackShare' && status === 'COMPLETED') return undefined;
    if (d.type === 'SetupPackShare' && status === 'FAILED') return undefined;
    return `its latest share operation, ${d.type} (run ${d.runId}, started ${d.startTime.toISOString()}), is ${status}`;
  }

  private async busy(plan: OperationPlan): Promise<HttpError> {
    try {
      const d = await this.workflow.getHandle(plan.workflowId).describe();
      return new HttpError(
        409,
        `${plan.resource} is busy: operation ${plan.workflowId} (${d.type}, run ${d.runId}) started at ` +
          `${d.startTime.toISOString()} is still running; wait for it to finish ` +
          `(sitefleet operation watch ${plan.workflowId}) or cancel it, then retry`,
        {
          running: {
            operationId: plan.workflowId,
            runId: d.runId,
            workflowType: d.type,
            startedAt: d.startTime.toISOString(),
            webUiUrl: webUiUrl(this.settings, plan.workflowId, d.runId),
          },
        },
      );
    } catch {
      return new HttpError(409, `${plan.resource} is busy: operation ${plan.workflowId} is still running`);
    }
  }

  /** Status from Temporal, per-node progress while running, the result or failure once closed. */
  async view(operationId: string, runId?: string): Promise<OperationView> {
    const handle = this.workflow.getHandle(operationId, runId, { followRuns: false });
    let d: Awaited<ReturnType<typeof handle.describe>>;
    try {
      d = await handle.describe();
    } catch (err) {
      if (err instanceof WorkflowNotFoundError) {
        throw new HttpError(404, `no operation ${operationId}${runId ? ` with run ${runId}` : ''}`);
      }
      throw err;
    }
    const status = d.status.name as OperationStatus;
    let record = await this.store.getOperation(operationId, d.runId);
    const view: OperationView = {
      operationId,
      runId: d.runId,
      workflowType: d.type,
      ...(record ? { resource: record.resource } : {}),
      status,
      startedAt: d.startTime.toISOString(),
      ...(d.closeTime ? { closedAt: d.closeTime.toISOString() } : {}),
      webUiUrl: webUiUrl(this.settings, operationId, d.runId),
    };
    const summary = await d.staticSummary().catch(() => undefined);
    if (summary) view.summary = summary;
    const deadline = () => Date.now() + QUERY_TIMEOUT_MS;
    // Per-node progress, also after the end (a worker replays the history to answer), so the final state of every
    // node shows which one failed.
    const noWorker = await this.noWorkerMessage(d.taskQueue);
    if (noWorker) {
      view.progressError = noWorker;
    } else {
      try {
        view.progress = await this.workflow.withDeadline(deadline(), () =>
          handle.query<OperationProgress>(progressQuery),
        );
      } catch (err) {
        view.progressError = progressUnavailable(err, status);
      }
    }
    if (status !== 'RUNNING') {
      try {
        view.result = await this.workflow.withDeadline(deadline(), () => handle.result());
      } catch (err) {
        view.failure = errorMessage(err);
      }
      if (record) {
        record = await this.store.closeOperation(operationId, d.runId, status, d.closeTime ?? new Date());
      }
    }
    if (record?.effectError) view.effectError = record.effectError;
    return view;
  }

  /**
   * A progress query waits for a worker; when none polls the task queue, say so at once instead.
   * @returns a message for the operator, or undefined when a worker polls
   */
  private async noWorkerMessage(taskQueue: string): Promise<string | undefined> {
    try {
      const res = await this.workflow.workflowService.describeTaskQueue({
        namespace: this.settings.namespace,
        taskQueue: { name: taskQueue },
      });
      if ((res.pollers ?? []).length > 0) return undefined;
      return `no worker is polling task queue "${taskQueue}"; the operation waits until one starts (npm run worker)`;
    } catch {
      return undefined;
    }
  }

  /** Asks Temporal about operations the inventory still has as running, so completed ones apply their effect. */
  async refreshRunning(limit = 100): Promise<number> {
    const running = await this.store.listOperations({ status: 'RUNNING', limit });
    const closed = await Promise.all(running.map((op) => this.refresh(op)));
    return closed.filter(Boolean).length;
  }

  /** @returns whether the operation is now closed */
  async refresh(op: OperationRecord): Promise<boolean> {
    try {
      const d = await this.workflow.getHandle(op.id, op.runId, { followRuns: false }).describe();
      if (d.status.name === 'RUNNING') return false;
      await this.store.closeOperation(op.id, op.runId, d.status.name as OperationStatus, d.closeTime ?? new Date());
      return true;
    } catch (err) {
      if (err instanceof WorkflowNotFoundError) {
        // The workflow's history is gone (retention): nothing will ever report on it.
        await this.store.closeOperation(op.id, op.runId, 'UNKNOWN', new Date());
        return true;
      }
      this.log.warn({ err, operationId: op.id }, 'could not refresh operation status');
      return false;
    }
  }

  /** Requests cancellation; the workflow compensates what it had done. */
  async cancel(operationId: string, runId?: string): Promise<void> {
    try {
      await this.workflow.getHandle(operationId, runId, { followRuns: false }).cancel();
    } catch (err) {
      if (err instanceof WorkflowNotFoundError) throw new HttpError(404, `no running operation ${operationId}`);
      throw err;
    }
  }
}
