/**
 * Records `sitefleet_operation_duration_seconds` at the end of every workflow run, by workflow type (the workflow
 * meter's `workflowType`) and outcome: a workflow interceptor, so no operation can forget it.
 *
 * Every bundle and worker of sitefleet loads this module (workers/bundler-options.ts
 * SITEFLEET_WORKFLOW_INTERCEPTOR_MODULES). It changes no command, so recorded histories replay as before, and the
 * SDK's workflow meter records nothing while a workflow replays. The duration runs from the start of the first
 * run to the workflow task that ends this one; a run that continues as new records nothing (the last run does).
 */
import {
  ContinueAsNew,
  isCancellation,
  metricMeter,
  TemporalFailure,
  workflowInfo,
  type WorkflowExecuteInput,
  type WorkflowInboundCallsInterceptor,
  type WorkflowInterceptorsFactory,
  type Next,
} from '@temporalio/workflow';
import { recordOperation, type OperationOutcome } from '../metrics/sitefleet';

function record(outcome: OperationOutcome): void {
  const seconds = (Date.now() - workflowInfo().startTime.getTime()) / 1000;
  recordOperation(metricMeter, Math.max(0, seconds), outcome);
}

class OperationMetricsInterceptor implements WorkflowInboundCallsInterceptor {
  async execute(input: WorkflowExecuteInput, next: Next<WorkflowInboundCallsInterceptor, 'execute'>): Promise<unknown> {
    let result: unknown;
    try {
      result = await next(input);
    } catch (err) {
      // Cancelled, or failed for good (a TemporalFailure fails the workflow); any other error fails the workflow
      // task only, which the server retries: the run has not ended.
      if (!(err instanceof ContinueAsNew)) {
        if (isCancellation(err)) record('cancelled');
        else if (err instanceof TemporalFailure) record('failed');
      }
      throw err;
    }
    record('completed');
    return result;
  }
}

export const interceptors: WorkflowInterceptorsFactory = () => ({ inbound: [new OperationMetricsInterceptor()] });
