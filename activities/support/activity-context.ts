/**
 * The Temporal activity context, when there is one. Activity functions are also called directly (tests, the CLI),
 * outside any worker: there heartbeats go nowhere and nothing cancels them.
 */
import { Context } from '@temporalio/activity';

function currentContext(): Context | undefined {
  try {
    return Context.current();
  } catch {
    return undefined;
  }
}

/**
 * The running activity's cancellation signal, or undefined outside an activity. Capture it at the start of an
 * activity: the SDK refuses the call later, inside an abort listener.
 */
export function activityCancellationSignal(): AbortSignal | undefined {
  return currentContext()?.cancellationSignal;
}

/** Records progress on the running activity (throttled by the SDK); a no-op outside an activity. */
export function heartbeatProgress(details: unknown): void {
  currentContext()?.heartbeat(details);
}

/**
 * A heartbeat function bound to the activity running now: for progress reported from code that may run in another
 * activity's async context (a change queued for a server's shared config test runs in whoever holds the lock).
 */
export function boundHeartbeat(): (details: unknown) => void {
  const context = currentContext();
  return (details) => context?.heartbeat(details);
}

/** The running activity's attempt number (1 for the first try, and outside an activity). */
export function activityAttempt(): number {
  return currentContext()?.info.attempt ?? 1;
}

/** The error to reject with when `signal` fires. */
export function abortReason(signal: AbortSignal): Error {
  const reason: unknown = signal.reason;
  return reason instanceof Error ? reason : new Error(`cancelled: ${String(reason)}`);
}

/** How often a long step heartbeats while it runs, well inside the 20 s heartbeat timeout the workflows use. */
const HEARTBEAT_EVERY_MS = 5_000;

/**
 * Runs `fn` while heartbeating `details()` every few seconds, so that a step with no natural progress points
 * (a dump, a tar, an installer) is not taken for a dead worker. A no-op wrapper outside an activity.
 */
export async function withHeartbeat<T>(details: () => unknown, fn: () => Promise<T>): Promise<T> {
  heartbeatProgress(details());
  const ticker = setInterval(() => heartbeatProgress(details()), HEARTBEAT_EVERY_MS);
  try {
    return await fn();
  } finally {
    clearInterval(ticker);
  }
}
