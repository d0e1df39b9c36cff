/**
 * Failure helpers for workflow code. A plain Error thrown in a workflow fails the workflow *task* and retries it
 * forever; these always raise an ApplicationFailure. (badInput and permanentFailure are common/failures.ts.)
 */
import { ApplicationFailure, ActivityFailure, CancelledFailure, isCancellation } from '@temporalio/workflow';
import { FailureType } from '../common/failures';

/** The readable message of a failure, reaching through ActivityFailure to the activity's own error. */
export function describeFailure(err: unknown): string {
  if (err instanceof ActivityFailure && err.cause) return err.cause.message;
  if (err instanceof Error) return err.message;
  return String(err);
}

/**
 * The failure a workflow ends with after compensating: names the failed step and any failed compensation. When
 * the workflow was cancelled, a CancelledFailure that says so, so that the run ends CANCELLED (not FAILED with
 * the activity's empty cancellation message).
 */
export function failedAfterCompensation(
  step: string,
  err: unknown,
  compensationFailures: string[],
): ApplicationFailure | CancelledFailure {
  const outcome =
    compensationFailures.length > 0
      ? `These steps could not be undone: ${compensationFailures.join('; ')}`
      : 'Every completed step was undone.';
  if (isCancellation(err)) {
    return new CancelledFailure(`cancelled during "${step}". ${outcome}`);
  }
  return ApplicationFailure.create({
    type: FailureType.OperationFailed,
    message: `${step} failed: ${describeFailure(err)}. ${outcome}`,
    nonRetryable: true,
    cause: err instanceof Error ? err : undefined,
  });
}

/** The phase a workflow shows once it has compensated: cancelled or failed, and whether every undo worked. */
export function compensatedPhase(step: string, err: unknown, compensationFailures: string[]): string {
  const how = isCancellation(err) ? `cancelled during "${step}"` : `failed at "${step}"`;
  return compensationFailures.length > 0
    ? `${how}; ${compensationFailures.length} undo(s) failed: ${compensationFailures.join('; ')}`
    : `${how}; every completed step was undone`;
}
