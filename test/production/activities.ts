/**
 * Activities of the encrypted-history test workflow.
 */
import { ApplicationFailure, Context } from '@temporalio/activity';

/** Fails on the first attempt with the secret in the message; returns a string holding the secret after. */
export async function loginWithSecret(secret: string): Promise<string> {
  if (Context.current().info.attempt === 1) {
    throw ApplicationFailure.retryable(`first login with password ${secret} was refused`, 'LoginRefused');
  }
  return `session opened with ${secret}`;
}
