/**
 * Activities of the encrypted-history and metrics test workflows.
 */
import { ApplicationFailure, Context, metricMeter } from '@temporalio/activity';
import { recordCheck, recordSync } from '../../metrics/sitefleet';

/** Fails on the first attempt with the secret in the message; returns a string holding the secret after. */
export async function loginWithSecret(secret: string): Promise<string> {
  if (Context.current().info.attempt === 1) {
    throw ApplicationFailure.retryable(`first login with password ${secret} was refused`, 'LoginRefused');
  }
  return `session opened with ${secret}`;
}

/** What a sync and a verification record, through the activity's metric meter (metrics/sitefleet.ts). */
export async function recordSomeWork(): Promise<void> {
  recordSync(metricMeter, 'web1.example.net', 10, 2048);
  recordSync(metricMeter, 'web1.example.net', 5, 1000);
  recordSync(metricMeter, 'web2.example.net', 0, 0);
  recordSync(metricMeter, 'web2.example.net', Number.NaN, -1); // a bad parse never fails the sync it measures
  recordCheck(metricMeter, 'web1', 'nginx-config', true);
  recordCheck(metricMeter, 'web1', 'nginx-config', false);
  recordCheck(metricMeter, 'web1', 'nginx-config', true);
  recordCheck(metricMeter, 'odd"node\\\n', 'http-probe', true);
}
