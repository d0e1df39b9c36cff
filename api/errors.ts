/**
 * How the API answers a refused request: one JSON shape per kind of refusal, and the status that goes with it.
 */
import type { ErrorRequestHandler } from 'express';
import type { Logger } from 'pino';
import {
  AlreadyExistsError,
  ConflictError,
  InUseError,
  InvalidResourceError,
  MissingReferenceError,
  NotFoundError,
} from '../inventory/store';

export interface FieldProblem {
  field: string;
  rule: string;
}

/** An error with an HTTP status and a JSON body. */
export class HttpError extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly details: Record<string, unknown> = {},
  ) {
    super(message);
  }
}

/** 400 with field-level problems: `{ error: 'invalid request', fields: [{ field, rule }] }`. */
export function invalidRequest(fields: FieldProblem[]): HttpError {
  return new HttpError(400, 'invalid request', { fields });
}

/** Maps inventory and HTTP errors to responses; anything else is a 500 that is logged, not echoed. */
export function errorHandler(log: Logger): ErrorRequestHandler {
  return (err: unknown, req, res, _next) => {
    const send = (status: number, body: Record<string, unknown>) => res.status(status).json(body);
    if (err instanceof HttpError) return send(err.status, { error: err.message, ...err.details });
    if (err instanceof InvalidResourceError) return send(400, { error: 'invalid request', fields: err.fields });
    if (err instanceof MissingReferenceError) {
      return send(404, { error: err.message, references: err.references });
    }
    if (err instanceof NotFoundError) return send(404, { error: err.message });
    if (err instanceof AlreadyExistsError) return send(409, { error: err.message });
    if (err instanceof InUseError) return send(409, { error: err.message, usedBy: err.uses });
    if (err instanceof ConflictError) return send(409, { error: err.message });
    // body-parser errors carry a status and a type.
    const e = err as { status?: number; type?: string; message?: string };
    if (e.type === 'entity.too.large') return send(413, { error: 'request body too large' });
    if (e.type === 'entity.parse.failed') return send(400, { error: 'request body is not valid JSON' });
    if (e.type === 'charset.unsupported' || e.type === 'encoding.unsupported') {
      return send(415, { error: 'request body must be UTF-8 JSON' });
    }
    // zlib's own words ("incorrect header check") say nothing to a client.
    if (typeof (err as { code?: unknown }).code === 'string' && /^Z_/.test((err as { code: string }).code)) {
      const encoding = req.headers['content-encoding'] ?? 'compressed';
      return send(400, {
        error: `request body is not valid ${encoding} data (Content-Encoding: ${encoding}); send it compressed with ${encoding}, or uncompressed without Content-Encoding`,
      });
    }
    if (typeof e.status === 'number' && e.status >= 400 && e.status < 500) {
      return send(e.status, { error: e.message ?? 'bad request' });
    }
    log.error({ err }, 'request failed');
    return send(500, { error: 'internal error; see the API log' });
  };
}
