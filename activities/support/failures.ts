/**
 * The failures activities raise, one constructor per kind, so that every activity classifies the same fault the
 * same way. Permanent faults (bad input, a changed host key, a config that fails its test, a host without kernel
 * NFS) are non-retryable and carry a `type` the workflows list in `nonRetryableErrorTypes`; transient faults (a
 * dropped ssh connection, a host that is down, a timeout) are retryable.
 */
import { ApplicationFailure } from '@temporalio/common';

export const FailureType = {
  BadInput: 'BadInput',
  HostKeyMismatch: 'HostKeyMismatch',
  SshAuthenticationFailed: 'SshAuthenticationFailed',
  HostUnreachable: 'HostUnreachable',
  ConnectionLost: 'ConnectionLost',
  RemoteCommandFailed: 'RemoteCommandFailed',
  RemoteCommandTimeout: 'RemoteCommandTimeout',
  ConfigTestFailed: 'ConfigTestFailed',
  KernelNfsMissing: 'KernelNfsMissing',
  RsyncFailed: 'RsyncFailed',
  /** The server lacks something sitefleet needs (a user, a package, a running daemon): an operator must add it. */
  ServerNotReady: 'ServerNotReady',
  /** The database server refused or failed a statement. */
  DatabaseFailed: 'DatabaseFailed',
  UidGidMismatch: 'UidGidMismatch',
  ResolutionMismatch: 'ResolutionMismatch',
  ProbeFailed: 'ProbeFailed',
  Refused: 'Refused',
} as const;
export type FailureTypeName = (typeof FailureType)[keyof typeof FailureType];

/** A permanent failure: retrying cannot help, an operator has to change something first. */
export function permanentFailure(type: FailureTypeName, message: string, details?: unknown): ApplicationFailure {
  return ApplicationFailure.create({
    type,
    message,
    nonRetryable: true,
    details: details === undefined ? [] : [details],
  });
}

/** A transient failure: the activity's retry policy tries again with backoff. */
export function transientFailure(type: FailureTypeName, message: string, details?: unknown): ApplicationFailure {
  return ApplicationFailure.create({
    type,
    message,
    nonRetryable: false,
    details: details === undefined ? [] : [details],
  });
}

export function badInput(message: string, details?: unknown): ApplicationFailure {
  return permanentFailure(FailureType.BadInput, message, details);
}

/** The message of any thrown value. */
export function messageOf(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
