/**
 * How platform code reaches a group's code receivers: parallel rsync from the controller, or a relay (the
 * controller streams one copy to the first member, each member passes it on; activities/relay/relay.ts). The choice is
 * made here, deterministically, from the workflow's input and activity results only.
 */
import { isCancellation, log, workflowInfo } from '@temporalio/workflow';
import type * as activities from '../activities';
import type { Server } from '../domain/model';
import type { CreatePlatformInput } from '../domain/operations';
import type { PlatformTransferPlan, TransferOptions } from '../domain/transfer';
import { quick, relayStream, undo } from './activity-stubs';
import { describeFailure } from './failures';
import { allBounded } from '../common/settle';
import type { Progress } from './progress';
import type { Saga } from './saga';

export const RELAY_RULE = {
  minMembers: 3,
  minBytes: 16 * 1024 * 1024,
  /** Relay's fixed cost: keys, connections, verification, switch (measured: ~0.5 s on 2 busy cores). */
  overheadSeconds: 0.6,
  /** Per member: one more hop of latency and one more verification. */
  perMemberSeconds: 0.05,
  /** Relay must be predicted this many times faster: a wrong guess must not make things slower. */
  margin: 1.5,
} as const;

/** What the choice reads of a transfer plan: the platform's size and what rsync would send to each member. */
export type TransferEstimate = Pick<PlatformTransferPlan, 'bytes' | 'members'>;

export interface TransferDecision {
  mode: 'rsync' | 'relay';
  reason: string;
  predicted?: { rsyncSeconds: number; relaySeconds: number };
}

const mb = (bytes: number): string => `${(bytes / 1e6).toFixed(1)} MB`;

/** The decision that needs no estimate, or undefined when `auto` has to look at what would be sent. */
export function decideWithoutEstimate(
  options: TransferOptions | undefined,
  members: number,
): TransferDecision | undefined {
  const mode = options?.mode ?? 'auto';
  if (mode === 'rsync') return { mode: 'rsync', reason: 'transfer.mode is rsync' };
  if (mode === 'relay') return { mode: 'relay', reason: 'transfer.mode is relay' };
  const uplink = options?.uplinkMbit;
  if (uplink === undefined || !(uplink > 0)) {
    return { mode: 'rsync', reason: 'no uplink bandwidth hint (transfer.uplinkMbit): parallel rsync' };
  }
  const minMembers = options?.minMembers ?? RELAY_RULE.minMembers;
  if (members < minMembers)
    return { mode: 'rsync', reason: `${members} member(s), fewer than ${minMembers}: parallel rsync` };
  return undefined;
}

/**
 * The `auto` rule. rsync from the controller sends every member its own copy through the controller's uplink
 * (U), each also limited by the member's link (L); a relay sends one copy through the slower of the two, plus a
 * fixed and a per-member cost. Relay is chosen when
 *
 *   members >= minMembers, rsync bytes >= minBytes, and
 *   margin x (bytes / min(U, L) + overhead + perMember x members) < max(sum changed / U, max changed / L).
 */
export function chooseTransfer(options: TransferOptions | undefined, estimate: TransferEstimate): TransferDecision {
  const early = decideWithoutEstimate(options, estimate.members.length);
  if (early) return early;
  const uplink = (options?.uplinkMbit as number) * 1e6;
  const link = (options?.memberLinkMbit ?? (options?.uplinkMbit as number)) * 1e6;
  const total = estimate.members.reduce((sum, m) => sum + m.changedBytes, 0);
  const minBytes = options?.minBytes ?? RELAY_RULE.minBytes;
  if (total < minBytes) return { mode: 'rsync', reason: `only ${mb(total)} to send: parallel rsync` };
  const largest = Math.max(...estimate.members.map((m) => m.changedBytes));
  const rsyncSeconds = Math.max((total * 8) / uplink, (largest * 8) / link);
  const relaySeconds =
    (estimate.bytes * 8) / Math.min(uplink, link) +
    RELAY_RULE.overheadSeconds +
    RELAY_RULE.perMemberSeconds * estimate.members.length;
  const predicted = { rsyncSeconds: round(rsyncSeconds), relaySeconds: round(relaySeconds) };
  const sizes = `${estimate.members.length} members, ${mb(total)} by rsync vs ${mb(estimate.bytes)} by relay`;
  if (relaySeconds * RELAY_RULE.margin < rsyncSeconds) {
    return {
      mode: 'relay',
      reason: `${sizes}: relay ~${predicted.relaySeconds} s, rsync ~${predicted.rsyncSeconds} s`,
      predicted,
    };
  }
  return {
    mode: 'rsync',
    reason: `${sizes}: rsync ~${predicted.rsyncSeconds} s is not beaten clearly enough by relay ~${predicted.relaySeconds} s`,
    predicted,
  };
}

const round = (seconds: number): number => Math.round(seconds * 100) / 100;

export interface SyncedMember {
  server: string;
  filesChanged: number;
  bytesSent: number;
  via: 'rsync' | 'relay';
}

export interface CodeSyncContext {
  progress: Progress;
  saga: Saga;
  /** The workflow's rsync push of one member (existence check, compensation, syncPlatform). */
  rsyncOne: (server: Server) => Promise<{ server: string; filesChanged: number; bytesSent: number }>;
  limit: number;
}

/**
 * Sends the platform's code to `receivers`: parallel rsync, or a relay followed by rsync for every member the
 * relay did not complete (so that every member ends complete, or the step fails as an rsync push would).
 */
export async function syncPlatformCode(
  input: CreatePlatformInput,
  receivers: Server[],
  ctx: CodeSyncContext,
): Promise<SyncedMember[]> {
  const { platform } = input;
  const rsyncAll = (servers: Server[]): Promise<SyncedMember[]> =>
    allBounded(servers, ctx.limit, async (server) => ({ ...(await ctx.rsyncOne(server)), via: 'rsync' as const }));

  let decision = decideWithoutEstimate(input.transfer, receivers.length);
  let exists: (boolean | null)[] | undefined;
  if (!decision) {
    const estimate = await quick.planPlatformTransfer({ platform, servers: receivers });
    decision = chooseTransfer(input.transfer, estimate);
    exists = receivers.map((s) => estimate.members.find((m) => m.server === s.name)?.exists ?? null);
  }
  log.info('platform transfer chosen', { platform: platform.name, mode: decision.mode, reason: decision.reason });
  if (decision.mode === 'rsync') return rsyncAll(receivers);

  // Known before anything is written: a platform this run creates is removed again if a later step fails or the
  // workflow is cancelled, wherever the relay got to (removal is idempotent). A member that could not be asked is
  // left alone here: if the relay does not reach it either, its rsync push asks again.
  exists ??= await allBounded(receivers, ctx.limit, (server) => quick.platformExists({ server, platform }));
  receivers.forEach((server, i) => {
    if (exists?.[i] === false) {
      ctx.saga.add(`remove platform on ${server.name}`, () => undo.removePlatform({ server, platform }), {
        on: server.name,
      });
    }
  });

  ctx.progress.phase(`sync platform code by relay (${decision.reason})`);
  for (const server of receivers) ctx.progress.node(server.name, 'running', 'relay');
  let relayed: Awaited<ReturnType<typeof activities.relayPlatform>> | undefined;
  try {
    relayed = await relayStream.relayPlatform({
      platform,
      servers: receivers,
      operation: workflowInfo().runId,
      compress: input.transfer?.compress ?? true,
    });
  } catch (err) {
    // A cancelled workflow stops here (its compensation runs); anything else is the relay's own failure.
    if (isCancellation(err)) throw err;
    log.warn('relay failed as a whole; every member gets rsync', { error: describeFailure(err) });
  }
  const byName = new Map((relayed?.members ?? []).map((m) => [m.server, m]));
  for (const server of receivers) {
    const m = byName.get(server.name);
    if (m?.switched) ctx.progress.node(server.name, 'done', `relayed and verified (${m.how ?? 'switched'})`);
    else ctx.progress.node(server.name, 'running', `relay did not complete (${m?.phase ?? 'not run'}): rsync`);
  }
  const repaired = receivers.filter((s) => !byName.get(s.name)?.switched);
  if (repaired.length > 0) {
    log.warn('members not completed by the relay get rsync', {
      members: repaired.map((s) => `${s.name}: ${byName.get(s.name)?.error ?? 'relay failed'}`),
    });
  }
  const rsynced = await rsyncAll(repaired);
  // Leftover keys and staging directories of members that were unreachable during the relay's own clean-up.
  const pending = relayed ? relayed.cleanupPending : receivers.map((s) => s.name);
  await allBounded(
    receivers.filter((s) => pending.includes(s.name)),
    ctx.limit,
    (server) =>
      quick.cleanupRelay({ server, platform }).catch((err: unknown) => {
        log.warn('relay clean-up failed; the key expires on its own', {
          server: server.name,
          error: describeFailure(err),
        });
      }),
  );
  const first = relayed?.chain[0];
  return receivers.map((server) => {
    const viaRsync = rsynced.find((r) => r.server === server.name);
    if (viaRsync) return viaRsync;
    return {
      server: server.name,
      filesChanged: relayed?.files ?? 0,
      // What the controller sent: the whole stream to the first member, nothing to the others.
      bytesSent: server.name === first ? (relayed?.streamedBytes ?? 0) : 0,
      via: 'relay' as const,
    };
  });
}
