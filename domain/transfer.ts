/**
 * How a platform's code reaches a group's code receivers: parallel rsync from the controller, or a relay (one
 * stream passed from member to member; docs/relay.md). The options are a property of where the group lives —
 * the controller's uplink, the members' links — so a pack or cluster stores them, and a deployment may override
 * them for one operation. The choice itself is made in workflow code (workflows/relay.ts), which imports only the
 * type from here.
 */
import { z } from 'zod';

export const TRANSFER_MODES = ['auto', 'rsync', 'relay'] as const;
export type TransferMode = (typeof TRANSFER_MODES)[number];

/**
 * The fastest link a rate may name, in Mbit/s (1 Tbit/s). Also catches a rate given in bit/s or kbit/s instead of
 * Mbit/s, which would make `auto` believe the uplink is never the bottleneck.
 */
export const MAX_LINK_MBIT = 1_000_000;

/** The most code receivers a group has (a cluster lists at most 64 members). */
export const MAX_RELAY_MIN_MEMBERS = 64;

const linkMbit = (what: string) =>
  z
    .number({ message: 'must be a number of Mbit/s' })
    .positive('must be a positive number of Mbit/s')
    .max(MAX_LINK_MBIT, `must be at most ${MAX_LINK_MBIT} Mbit/s (1 Tbit/s): give the rate in Mbit/s, not bit/s`)
    .describe(what);

export const transferOptionsSchema = z
  .object({
    /** `auto`: relay only where the rule predicts it clearly faster; `rsync` / `relay` force one. @default 'auto' */
    mode: z
      .enum(TRANSFER_MODES, { message: 'must be "auto", "rsync" or "relay"' })
      .describe(
        'auto: relay only where predicted clearly faster (needs uplinkMbit); rsync / relay force one. Default auto',
      )
      .optional(),
    /**
     * The controller's (worker's) upload bandwidth in Mbit/s, configured or measured. Without it `auto` never
     * relays: nothing says the controller's uplink is the bottleneck (unshaped, CPU is, and parallel rsync wins).
     */
    uplinkMbit: linkMbit(
      "The controller's upload bandwidth in Mbit/s; without it auto always uses parallel rsync",
    ).optional(),
    /** Each member's own link in Mbit/s. @default uplinkMbit */
    memberLinkMbit: linkMbit("Each member's own link in Mbit/s. Default uplinkMbit").optional(),
    /** Fewest code receivers for `auto` to relay. @default 3 */
    minMembers: z
      .number({ message: 'must be a whole number of members' })
      .int('must be a whole number of members')
      .min(2, 'must be at least 2: a relay passes the stream from one member to the next')
      .max(MAX_RELAY_MIN_MEMBERS, `must be at most ${MAX_RELAY_MIN_MEMBERS}, the most members a group has`)
      .describe('Fewest code receivers for auto to relay. Default 3')
      .optional(),
    /** Fewest bytes rsync would send in all for `auto` to relay. @default 16 MiB */
    minBytes: z
      .number({ message: 'must be a whole number of bytes' })
      .int('must be a whole number of bytes')
      .min(0, 'must be 0 or more bytes')
      .describe('Fewest bytes rsync would send in all for auto to relay. Default 16777216 (16 MiB)')
      .optional(),
    /**
     * Compress the relay stream with zstd -1 (when the controller and every member have zstd): on the slow links a
     * relay is for, it sends a quarter of the bytes of a PHP codebase for little CPU. @default true
     */
    compress: z
      .boolean({ message: 'must be true or false' })
      .describe('Compress the relay stream with zstd where every host has it. Default true')
      .optional(),
  })
  .strict();

/** How a platform's code is sent. Carried as `transfer` beside `platform` and `group` in CreatePlatformInput. */
export type TransferOptions = z.infer<typeof transferOptionsSchema>;

/**
 * The options one deployment runs with: the group's stored options, each field overridden by the operation's own
 * where it sets one (so `{ mode: 'relay' }` for one deployment keeps the group's link rates).
 * @returns undefined when neither sets anything, so that an input without options stays as it was
 */
export function effectiveTransferOptions(
  group: TransferOptions | undefined,
  operation: TransferOptions | undefined,
): TransferOptions | undefined {
  const merged: TransferOptions = { ...group };
  for (const [key, value] of Object.entries(operation ?? {})) {
    if (value !== undefined) (merged as Record<string, unknown>)[key] = value;
  }
  return Object.keys(merged).length > 0 ? merged : undefined;
}

/** What a push of a platform would send to each member (the activity planPlatformTransfer reads it). */
export interface PlatformTransferPlan {
  platform: string;
  /** Entries and bytes of the platform as a push sends it. */
  entries: number;
  bytes: number;
  /**
   * Per member: whether the platform is there (null: the member could not be asked), and the bytes rsync would
   * have to send (by its quick check; the whole platform when unknown).
   */
  members: { server: string; exists: boolean | null; changedBytes: number }[];
}
