/**
 * Activity stubs with timeouts and retry policies that fit each kind of step.
 * Failures of the types in PERMANENT_FAILURES (common/failures.ts) are never retried: retrying cannot help.
 */
import { proxyActivities, type ActivityOptions } from '@temporalio/workflow';
import type { Duration } from '@temporalio/common';
import type * as activities from '../activities';
import { PERMANENT_FAILURES } from '../common/failures';

const retry = (maximumAttempts: number, maximumInterval: Duration): ActivityOptions['retry'] => ({
  initialInterval: '1s',
  backoffCoefficient: 2,
  maximumInterval,
  maximumAttempts,
  nonRetryableErrorTypes: PERMANENT_FAILURES,
});

/** Short remote commands: file writes, config tests, reloads, checks. */
export const quick = proxyActivities<typeof activities>({
  startToCloseTimeout: '2 minutes',
  retry: retry(5, '20s'),
});

/**
 * Long steps: transfers (rsync, backups, restores) and the site installer. They heartbeat, so a cut link or a dead
 * worker is noticed in seconds, not at the timeout.
 */
export const long = proxyActivities<typeof activities>({
  startToCloseTimeout: '30 minutes',
  heartbeatTimeout: '20s',
  retry: retry(5, '30s'),
});

/** Probes and verification: retried a little, because a failed probe is a finding, not a fault. */
export const probe = proxyActivities<typeof activities>({
  startToCloseTimeout: '1 minute',
  retry: retry(3, '5s'),
});

/**
 * Work over every site of a group on one server (verifyNode, ensureSitesOnServer, probeSitesOnServer): minutes at
 * 1,000 sites (a resync of 150 took 5 min on a loaded 2-core machine), so a long timeout; the activities heartbeat per site or check, so a dead worker is noticed at once.
 */
export const perServer = proxyActivities<typeof activities>({
  startToCloseTimeout: '2 hours',
  heartbeatTimeout: '30s',
  retry: retry(3, '10s'),
});

/**
 * Compensations: an undo must not give up while a member is briefly down, or that member keeps a half-made site.
 * Retried without a count limit, bounded by time instead.
 */
export const undo = proxyActivities<typeof activities>({
  startToCloseTimeout: '2 minutes',
  scheduleToCloseTimeout: '1 hour',
  retry: {
    initialInterval: '1s',
    backoffCoefficient: 2,
    maximumInterval: '1 minute',
    nonRetryableErrorTypes: PERMANENT_FAILURES,
  },
});

/**
 * Compensations over every site of a server (removeSitesFromServer with a snapshot, setDatabaseAccountsOnServer):
 * as long as the batches they undo, heartbeating, and retried like `undo`, bounded by time.
 */
export const undoPerServer = proxyActivities<typeof activities>({
  startToCloseTimeout: '2 hours',
  heartbeatTimeout: '30s',
  scheduleToCloseTimeout: '4 hours',
  retry: {
    initialInterval: '1s',
    backoffCoefficient: 2,
    maximumInterval: '1 minute',
    nonRetryableErrorTypes: PERMANENT_FAILURES,
  },
});

/** Waiting for a drained member's in-flight requests to finish: bounded by the activity's own timeout, heartbeating. */
export const drainWait = proxyActivities<typeof activities>({
  startToCloseTimeout: '5 minutes',
  heartbeatTimeout: '20s',
  retry: retry(3, '5s'),
});

/** The relay's one stream per chain, heartbeating; retried once (a worker crash), after which the members get rsync. */
export const relayStream = proxyActivities<typeof activities>({
  startToCloseTimeout: '30 minutes',
  heartbeatTimeout: '30s',
  retry: { initialInterval: '1s', maximumAttempts: 2, nonRetryableErrorTypes: PERMANENT_FAILURES },
});
