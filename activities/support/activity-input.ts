/**
 * Validation of activity inputs against the domain schemas. An input that breaks a rule is a permanent failure
 * (`BadInput`) naming each field and the rule it broke.
 */
import type { z } from 'zod';
import { fieldErrors } from '../../domain/fields';
import { badInput } from '../../common/failures';

/** Parses `value` with `schema`, or throws a non-retryable BadInput failure that says what is wrong with `what`. */
export function parseInput<S extends z.ZodType>(schema: S, value: unknown, what: string): z.infer<S> {
  const result = schema.safeParse(value);
  if (result.success) return result.data;
  const errors = fieldErrors(result.error);
  throw badInput(`${what}: ${errors.map((e) => `${e.field} ${e.rule}`).join('; ')}`, errors);
}
