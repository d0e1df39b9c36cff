/**
 * Request and response shapes of the API that are not domain resources. Built from the domain field rules,
 * so the API, the CLI and the OpenAPI document agree.
 */
import { z } from 'zod';
import { domainName, resourceName } from '../domain/fields';
import { serverSchema } from '../domain/model';
import { transferOptionsSchema } from '../domain/transfer';

/** A server as registered: without `ssh.hostKey` the API fetches and pins the key the server offers. */
export const serverRegistrationSchema = serverSchema.extend({
  ssh: serverSchema.shape.ssh.partial({ hostKey: true }),
});
export type ServerRegistration = z.input<typeof serverRegistrationSchema>;

export const nameParam = z.object({ name: resourceName }).strict();
export const domainParam = z.object({ domain: domainName }).strict();

/** No body, or an empty object: operations that take no options still refuse unknown fields. */
export const emptyBodySchema = z.object({}).strict();

export const migrateBodySchema = z
  .object({
    /** The platform the site moves to. */
    platform: resourceName,
  })
  .strict();

export const restoreBodySchema = z
  .object({
    /** A backup file name under the backups directory, as BackupSite reported it. */
    backup: z
      .string()
      .regex(/^[A-Za-z0-9][A-Za-z0-9._-]{0,199}$/, 'must be a backup file name (letters, digits, . _ -)'),
  })
  .strict();

export const memberBodySchema = z.object({ server: resourceName }).strict();

/** `cluster set-lb`: the server with an `lb` service that fronts the cluster, or null for none. */
export const loadBalancerBodySchema = z.object({ server: resourceName.nullable() }).strict();

/**
 * A deployment's options; the body is optional (no body, or `{}`, deploys with the group's stored options).
 * `transfer` overrides the pack's or cluster's stored transfer options field by field, for this operation only.
 */
export const teardownShareBodySchema = z
  .object({
    /** Take the share down although platforms are on the pack (its slaves stop serving them). */
    force: z.boolean().optional(),
  })
  .strict();

export const deployBodySchema = z
  .object({
    transfer: transferOptionsSchema.optional(),
  })
  .strict();

/** A schedule interval such as 90s, 15m, 6h or 1d; at least one minute. */
export const everySchema = z
  .string()
  .regex(/^[1-9][0-9]{0,5}[smhd]$/, 'must be a number and a unit (s, m, h or d) such as 15m or 6h')
  .refine((v) => durationMs(v) >= 60_000, 'must be at least 1m');

export function durationMs(every: string): number {
  const n = Number(every.slice(0, -1));
  const unit = { s: 1_000, m: 60_000, h: 3_600_000, d: 86_400_000 }[every.slice(-1) as 's' | 'm' | 'h' | 'd'];
  return n * (unit ?? NaN);
}

/** A note shown with a schedule: one line of plain words, so that it is safe wherever it is shown. */
const noteSchema = z
  .string()
  .max(200, 'must be at most 200 characters')
  .regex(
    /^[A-Za-z0-9]([A-Za-z0-9 ,.:_()-]*[A-Za-z0-9.)])?$/,
    'must be one line of letters, digits, spaces and , . : _ ( ) - (starting with a letter or digit)',
  );

export const scheduleActions = ['resync', 'verify'] as const;
export const scheduleCreateSchema = z
  .object({
    action: z.enum(scheduleActions, { message: 'must be "resync" or "verify"' }),
    target: z
      .object({
        kind: z.enum(['pack', 'cluster'], { message: 'must be "pack" or "cluster"' }),
        name: resourceName,
      })
      .strict(),
    every: everySchema,
    paused: z.boolean().default(false),
    note: noteSchema.optional(),
  })
  .strict();
export type ScheduleCreate = z.infer<typeof scheduleCreateSchema>;

export const schedulePatchSchema = z
  .object({
    every: everySchema.optional(),
    paused: z.boolean().optional(),
    note: noteSchema.optional(),
  })
  .strict();

/** Schedule ids are `resync/KIND/NAME` or `verify/KIND/NAME`. */
export const scheduleIdSchema = z
  .string()
  .regex(/^(resync|verify)\/(pack|cluster)\/[a-z0-9][a-z0-9_-]{0,62}$/, 'must be resync|verify/pack|cluster/NAME');

/**
 * Operation ids are workflow ids such as `site/example.com` or `verify/cluster/web`; a run started by a schedule
 * carries the time it was scheduled for (`resync/cluster/web-2026-11-26T14:00:00Z`).
 */
export const operationIdSchema = z
  .string()
  .max(300, 'must be at most 300 characters')
  .regex(/^[a-z]+(\/[a-z0-9][A-Za-z0-9._:-]*)+$/, 'must be an operation id such as site/example.com');

export const runIdSchema = z
  .string()
  .regex(/^[0-9a-f-]{1,64}$/, 'must be a run id (hex digits and -)')
  .optional();

export const operationStartedSchema = z.object({
  operationId: z.string(),
  runId: z.string(),
  workflowType: z.string(),
  webUiUrl: z.string(),
});
export type OperationStarted = z.infer<typeof operationStartedSchema>;

export const nodeProgressSchema = z.object({
  state: z.enum(['pending', 'running', 'done', 'failed', 'compensating', 'compensated', 'skipped']),
  step: z.string(),
  error: z.string().optional(),
});

export const operationSchema = z.object({
  operationId: z.string(),
  runId: z.string(),
  workflowType: z.string(),
  resource: z.string().optional(),
  status: z.string(),
  startedAt: z.string(),
  closedAt: z.string().optional(),
  summary: z.string().optional(),
  webUiUrl: z.string(),
  progress: z
    .object({ operation: z.string(), phase: z.string(), nodes: z.record(z.string(), nodeProgressSchema) })
    .optional(),
  progressError: z.string().optional(),
  result: z.unknown().optional(),
  failure: z.string().optional(),
  effectError: z.string().optional(),
});
export type OperationView = z.infer<typeof operationSchema>;

export const scheduleViewSchema = z.object({
  scheduleId: z.string(),
  action: z.enum(scheduleActions),
  target: z.object({ kind: z.enum(['pack', 'cluster']), name: z.string() }),
  workflowType: z.string(),
  every: z.string().optional(),
  paused: z.boolean(),
  note: z.string().optional(),
  nextActionTimes: z.array(z.string()),
  recentActions: z.array(z.object({ workflowId: z.string(), runId: z.string(), takenAt: z.string() })),
});
export type ScheduleView = z.infer<typeof scheduleViewSchema>;

export const errorSchema = z.object({
  error: z.string(),
  fields: z.array(z.object({ field: z.string(), rule: z.string() })).optional(),
});

export const forgetQuery = z.object({
  /** `true`: remove the inventory record only; the servers are not touched. */
  forget: z.enum(['true', 'false'], { message: 'must be "true" or "false"' }).optional(),
});

export const operationsQuery = z.object({
  resource: z
    .string()
    .regex(
      /^(server|pack|cluster|platform|site)\/[a-z0-9][a-z0-9._-]{0,252}$/,
      'must be KIND/NAME such as site/example.com',
    )
    .optional(),
  status: z
    .enum(['RUNNING', 'COMPLETED', 'FAILED', 'CANCELLED', 'TERMINATED', 'CONTINUED_AS_NEW', 'TIMED_OUT', 'UNKNOWN'], {
      message: 'must be a Temporal status name such as RUNNING or COMPLETED',
    })
    .optional(),
  limit: z.coerce.number().int('must be an integer').min(1, 'must be 1-500').max(500, 'must be 1-500').default(100),
});
