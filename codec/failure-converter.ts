/**
 * The failure converter used when payloads are encrypted: error messages and stack traces travel in an encoded
 * payload (which the codec encrypts) instead of in clear text in the history.
 *
 * This module is loaded by path (`failureConverterPath`) both in the worker and inside the workflow bundle, so it
 * must stay importable in the workflow sandbox: no Node builtins.
 */
import { DefaultFailureConverter } from '@temporalio/common';

export const failureConverter = new DefaultFailureConverter({ encodeCommonAttributes: true });
