/**
 * The failures activities and workflows raise, one constructor per kind, so that every step classifies the same
 * fault the same way. Permanent faults (bad input, a changed host key, a config that fails its test, a host without
 * kernel NFS) are non-retryable and carry a `type` the workflows list in `nonRetryableErrorTypes`
 * ({@link PERMANENT_FAILURES}); transient faults (a dropped ssh connection, a host that is down, a timeout) are
 * retryable. No Node builtins: workflow code imports this module too.
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
  /** A pack member or share reader does not see what the share should show it (a workflow's own check). */
  ShareNotVisible: 'ShareNotVisible',
  /** A workflow failed and compensated: the failure names the step and what could not be undone. */
  OperationFailed: 'OperationFailed',
} as const;
export type FailureTypeName = (typeof FailureType)[keyof typeof FailureType];

/**
 * The failure types no retry can help: every activity stub lists them in `nonRetryableErrorTypes`. (The order is
 * the one recorded in existing workflow histories.)
 */
export const PERMANENT_FAILURES: FailureTypeName[] = [
  FailureType.BadInput,
  FailureType.HostKeyMismatch,
  FailureType.SshAuthenticationFailed,
  FailureType.ServerNotReady,
  FailureType.ConfigTestFailed,
  FailureType.KernelNfsMissing,
  FailureType.UidGidMismatch,
  FailureType.ResolutionMismatch,
  FailureType.ProbeFailed,
  FailureType.Refused,
];

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
