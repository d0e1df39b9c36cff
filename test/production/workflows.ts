/**
 * Test workflows. SecretRoundTrip, for the encrypted-history test: a secret goes everywhere it can reach a history
 * (workflow input, activity argument and result, an activity failure that is retried, the workflow's own failure).
 * RecordsWork, for the metrics test: an activity records sync and check metrics, then the workflow waits.
 */
import { ApplicationFailure, proxyActivities, sleep } from '@temporalio/workflow';
import type * as activities from './activities';

const { loginWithSecret, recordSomeWork } = proxyActivities<typeof activities>({
  startToCloseTimeout: '10s',
  retry: { initialInterval: '50ms', maximumAttempts: 3 },
});

/** Calls an activity that fails once with the secret in its message, then fails itself with the secret. */
export async function SecretRoundTrip(secret: string): Promise<void> {
  const session = await loginWithSecret(secret);
  throw ApplicationFailure.nonRetryable(`the site rejected the password ${secret}`, 'SecretRejected', { session });
}

/** Records sync and check metrics in an activity (unless `work` is false), then sleeps `ms` (the duration). */
export async function RecordsWork(ms: number, work = true): Promise<void> {
  if (work) await recordSomeWork();
  await sleep(ms);
}
