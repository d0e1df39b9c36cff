/**
 * `sitefleet apply FILE`: a YAML description of servers, packs, clusters, platforms, sites and schedules is
 * validated with the domain schemas, compared with the inventory (create / update / unchanged per resource),
 * and the operations that bring the servers in line are listed; then, once confirmed, the inventory is written
 * and the operations run in dependency order.
 */
import { readFileSync } from 'node:fs';
import { parse as parseYaml } from 'yaml';
import { z } from 'zod';
import { fieldErrors } from '../domain/fields';
import { clusterSchema, packSchema, platformSchema, siteSchema, type Server } from '../domain/model';
import { canonicalJson, type ResourceKind } from '../inventory/store';
import { scheduleCreateSchema, serverRegistrationSchema, type OperationStarted } from '../api/schemas';
import { seg, type ApiClient } from './api-client';
import { describeStart, watchOperation } from './watch';
import { messageOf } from '../common/error-message';

export const applyFileSchema = z
  .object({
    servers: z.array(serverRegistrationSchema).default([]),
    packs: z.array(packSchema).default([]),
    clusters: z.array(clusterSchema).default([]),
    platforms: z.array(platformSchema).default([]),
    sites: z.array(siteSchema).default([]),
    schedules: z.array(scheduleCreateSchema).default([]),
  })
  .strict();
export type ApplyFile = z.infer<typeof applyFileSchema>;

export class ApplyFileError extends Error {
  constructor(
    message: string,
    readonly problems: { field: string; rule: string }[] = [],
  ) {
    super(message);
  }
}

/** Reads and validates an apply file (YAML or JSON). */
export function readApplyFile(path: string): ApplyFile {
  let raw: unknown;
  try {
    raw = parseYaml(readFileSync(path, 'utf8'));
  } catch (err) {
    throw new ApplyFileError(`cannot read ${path}: ${messageOf(err)}`);
  }
  const parsed = applyFileSchema.safeParse(raw ?? {});
  if (!parsed.success)
    throw new ApplyFileError(`${path} is not a valid sitefleet description`, fieldErrors(parsed.error));
  return parsed.data;
}

type Change = 'create' | 'update' | 'unchanged';

interface ResourceStep {
  kind: ResourceKind;
  plural: string;
  key: string;
  change: Change;
  body: unknown;
  /** The resource as the inventory holds it now, when it exists. */
  existing?: Record<string, unknown>;
}

interface OperationStep {
  phase: number;
  label: string;
  method: string;
  path: string;
}

export interface ApplyPlan {
  resources: ResourceStep[];
  schedules: { id: string; change: 'create' | 'update' | 'unchanged'; body: unknown }[];
  operations: OperationStep[];
}

const ORDER: { kind: ResourceKind; plural: keyof ApplyFile; key: string }[] = [
  { kind: 'server', plural: 'servers', key: 'name' },
  { kind: 'pack', plural: 'packs', key: 'name' },
  { kind: 'cluster', plural: 'clusters', key: 'name' },
  { kind: 'platform', plural: 'platforms', key: 'name' },
  { kind: 'site', plural: 'sites', key: 'domain' },
];

/** Compares the description with the inventory and lists what applying it does. Reads only. */
export async function planApply(api: ApiClient, file: ApplyFile): Promise<ApplyPlan> {
  const plan: ApplyPlan = { resources: [], schedules: [], operations: [] };
  for (const { kind, plural, key } of ORDER) {
    const current = await api.get<Record<string, Record<string, unknown>[]>>(`/v1/${plural}`);
    const byKey = new Map((current[plural] ?? []).map((r) => [String(r[key]), r]));
    for (const desired of file[plural] as Record<string, unknown>[]) {
      const k = String(desired[key]);
      const existing = byKey.get(k);
      let body: Record<string, unknown> = desired;
      if (kind === 'server' && existing) {
        // No host key in the file: keep the one pinned (when host and port stay the same).
        const d = desired as unknown as Server;
        const e = existing as unknown as Server;
        if (!d.ssh.hostKey && d.host === e.host && d.ssh.port === e.ssh.port) {
          body = { ...desired, ssh: { ...d.ssh, hostKey: e.ssh.hostKey } };
        }
      }
      const change: Change = !existing
        ? 'create'
        : canonicalJson(existing) === canonicalJson(body)
          ? 'unchanged'
          : 'update';
      plan.resources.push({ kind, plural, key: k, change, body, ...(existing ? { existing } : {}) });
    }
  }
  const existingSchedules = await api.get<{ schedules: { scheduleId: string; every?: string; paused: boolean }[] }>(
    '/v1/schedules',
  );
  for (const s of file.schedules) {
    const id = `${s.action}/${s.target.kind}/${s.target.name}`;
    const current = existingSchedules.schedules.find((x) => x.scheduleId === id);
    const change = !current
      ? 'create'
      : current.every === s.every && current.paused === s.paused
        ? 'unchanged'
        : 'update';
    plan.schedules.push({ id, change, body: s });
  }

  const changed = (kind: ResourceKind) => plan.resources.filter((r) => r.kind === kind && r.change !== 'unchanged');
  for (const r of changed('server')) {
    plan.operations.push({
      phase: 1,
      label: `verify server ${r.key}`,
      method: 'POST',
      path: `/v1/servers/${seg(r.key)}/verify`,
    });
  }
  for (const r of changed('pack')) {
    plan.operations.push({
      phase: 2,
      label: `set up the share of pack ${r.key}`,
      method: 'POST',
      path: `/v1/packs/${seg(r.key)}/setup-share`,
    });
  }
  for (const r of changed('platform')) {
    plan.operations.push({
      phase: 3,
      label: `deploy platform ${r.key}`,
      method: 'POST',
      path: `/v1/platforms/${seg(r.key)}/deploy`,
    });
  }
  // A pack or cluster whose members changed gets what its platforms and sites need on every member. Its transfer
  // options only say how later deployments send code: changing them alone touches no server.
  const withoutTransfer = (r: unknown) => canonicalJson({ ...(r as object), transfer: undefined });
  for (const kind of ['pack', 'cluster'] as const) {
    for (const r of changed(kind).filter((x) => x.change === 'update')) {
      if (withoutTransfer(r.existing) === withoutTransfer(r.body)) continue;
      plan.operations.push({
        phase: 4,
        label: `resync ${kind} ${r.key}`,
        method: 'POST',
        path: `/v1/${kind}s/${seg(r.key)}/resync`,
      });
    }
  }
  for (const r of changed('site')) {
    plan.operations.push({
      phase: 5,
      label: `install site ${r.key}`,
      method: 'POST',
      path: `/v1/sites/${seg(r.key)}/install`,
    });
  }
  return plan;
}

/** One field that an update changes: its dotted path and the values before and after (JSON text). */
export interface FieldChange {
  field: string;
  from: string;
  to: string;
}

function flatten(value: unknown, prefix: string, into: Map<string, string>): void {
  if (value !== null && typeof value === 'object' && !Array.isArray(value)) {
    for (const [k, v] of Object.entries(value as Record<string, unknown>)) {
      if (v !== undefined) flatten(v, prefix ? `${prefix}.${k}` : k, into);
    }
    return;
  }
  into.set(prefix, JSON.stringify(value));
}

/** The fields an update changes, in a stable order; lists compare as a whole. */
export function fieldChanges(before: unknown, after: unknown): FieldChange[] {
  const a = new Map<string, string>();
  const b = new Map<string, string>();
  flatten(before, '', a);
  flatten(after, '', b);
  const fields = [...new Set([...a.keys(), ...b.keys()])].sort();
  return fields
    .filter((f) => a.get(f) !== b.get(f))
    .map((field) => ({ field, from: a.get(field) ?? '(none)', to: b.get(field) ?? '(none)' }));
}

const RED = '\u001b[31m';
const BOLD_RED = '\u001b[1;31m';
const RESET = '\u001b[0m';

/**
 * The plan as lines: every resource with its change, every update with its field-level diff (old → new), a
 * host-key change marked (red with `color`, and "!" always), then the operations numbered 1, 2, 3 in the order
 * they run (operations that run together share a number).
 */
export function formatPlan(plan: ApplyPlan, opts: { color?: boolean } = {}): string[] {
  const red = (text: string) => (opts.color ? `${RED}${text}${RESET}` : text);
  const lines: string[] = ['Inventory:'];
  const mark = { create: '+', update: '~', unchanged: '=' } as const;
  for (const r of plan.resources) {
    lines.push(`  ${mark[r.change]} ${r.kind} ${r.key} (${r.change})`);
    if (r.change !== 'update') continue;
    for (const c of fieldChanges(r.existing, r.body)) {
      if (r.kind === 'server' && c.field === 'ssh.hostKey') {
        lines.push(red(`      ! ${c.field}: ${c.from} → ${c.to}`));
        lines.push(
          opts.color
            ? `${BOLD_RED}        HOST KEY CHANGE: from now on only the new key is trusted; make sure it is the server's real key${RESET}`
            : "        HOST KEY CHANGE: from now on only the new key is trusted; make sure it is the server's real key",
        );
      } else {
        lines.push(`      ${c.field}: ${c.from} → ${c.to}`);
      }
    }
  }
  for (const s of plan.schedules) lines.push(`  ${mark[s.change]} schedule ${s.id} (${s.change})`);
  if (plan.resources.length === 0 && plan.schedules.length === 0) lines.push('  (nothing described)');
  lines.push('Operations:');
  const phases = [...new Set(plan.operations.map((o) => o.phase))].sort((x, y) => x - y);
  for (const o of plan.operations) lines.push(`  ${phases.indexOf(o.phase) + 1}. ${o.label}`);
  if (plan.operations.length === 0) lines.push('  (none)');
  return lines;
}

export function planIsEmpty(plan: ApplyPlan): boolean {
  return (
    plan.operations.length === 0 &&
    plan.resources.every((r) => r.change === 'unchanged') &&
    plan.schedules.every((s) => s.change === 'unchanged')
  );
}

/**
 * Writes the inventory in reference order, then runs the operations phase by phase (operations of one phase
 * run together); stops after the first phase with a failure.
 * @returns whether every write and operation succeeded
 */
export async function executePlan(
  api: ApiClient,
  plan: ApplyPlan,
  opts: { print: (line: string) => void; pollMs?: number; runOperations: boolean },
): Promise<boolean> {
  for (const r of plan.resources.filter((x) => x.change !== 'unchanged')) {
    await api.request('PUT', `/v1/${r.plural}/${seg(r.key)}`, r.body);
    opts.print(`${r.change === 'create' ? 'created' : 'updated'} ${r.kind} ${r.key}`);
  }
  for (const s of plan.schedules.filter((x) => x.change !== 'unchanged')) {
    await api.request('POST', '/v1/schedules', s.body);
    opts.print(`${s.change === 'create' ? 'created' : 'updated'} schedule ${s.id}`);
  }
  if (!opts.runOperations) return true;
  const phases = [...new Set(plan.operations.map((o) => o.phase))].sort((a, b) => a - b);
  for (const phase of phases) {
    const ops = plan.operations.filter((o) => o.phase === phase);
    const results = await Promise.all(
      ops.map(async (o) => {
        const { body } = await api.request<OperationStarted>(o.method, o.path, {});
        const prefix = `[${body.operationId}] `;
        for (const line of describeStart(body)) opts.print(prefix + line);
        const { ok } = await watchOperation(api, body.operationId, body.runId, {
          print: opts.print,
          prefix,
          ...(opts.pollMs ? { pollMs: opts.pollMs } : {}),
        });
        return ok;
      }),
    );
    if (results.some((ok) => !ok)) {
      opts.print(`stopped: an operation of phase ${phase} did not complete; later phases were not started`);
      return false;
    }
  }
  return true;
}
