/**
 * Relay fan-out of a platform (issue 10): the controller streams one tar of the platform to the first member; each
 * member unpacks it into a staging directory beside the platform and passes the same stream on to the next member
 * (a pipelined chain), so the controller's uplink carries one copy however many members there are.
 *
 * - What is sent is what a push sends: rsync itself lists the source with the push's filter rules.
 * - Every member checks what it unpacked against the controller's manifest (paths, types, modes, sizes, mtimes,
 *   link targets, sha256 of every file) before it switches by rename; until then the platform is untouched.
 * - Members reach each other with a key made for this relay on the sending member, accepted by the receiving
 *   member only from the sender's address and only for the receive command (authorized_keys `restrict`,
 *   `command=`, `from=`, `expiry-time=`, in a managed block); host keys are pinned from the inventory.
 * - A member that fails takes nothing down with it: the members before it finish; the members after it see the
 *   stream end early, fail verification and keep their previous version. The workflow pushes to them with rsync.
 */
import { gzipSync } from 'node:zlib';
import { z } from 'zod';
import { platformSchema, serverSchema, type Platform, type Server } from '../../domain/model';
import { platformRoot } from '../../domain/paths';
import { activityCancellationSignal, heartbeatProgress } from '../support/activity-context';
import { parseInput } from '../support/activity-input';
import { settleBounded } from '../../common/settle';
import { badInput } from '../../common/failures';
import { platformSourceDir } from '../platform-source';
import {
  describeSource,
  expectedRecords,
  hashManifest,
  platformFilterArgs,
  tarFileList,
  type SourceManifest,
} from './relay-manifest';
import { NODE_SCRIPT, UNBLOCK_SCRIPT, VERIFY_AND_SWITCH_SCRIPT, VERIFY_FAILED_EXIT } from './relay-scripts';
import { type RelayCompression, streamTarToServer } from './relay-stream';
import { fail, openRelayChain, relayHopArgv, relayStagingDir, type MemberState, type RelayChain } from './relay-chain';
import { ensureWordpressDispatcher } from '../site-files';
import { runRemote } from '../transport/ssh-command';
import { runLocal } from '../transport/local-process';

/** How long the stream may run before it is stopped. @default 30 minutes */
const STREAM_TIMEOUT_MS = 30 * 60_000;
/** Verification reads every file again; give it time on big platforms. */
const VERIFY_TIMEOUT_MS = 15 * 60_000;
const HEARTBEAT_EVERY_MS = 5_000;

export interface RelayMemberResult {
  server: string;
  /** Whether the platform was there before (null when the member could not be asked). */
  existed: boolean | null;
  /** The new version is in place, verified, and the profile's hook has run. */
  switched: boolean;
  /** `exchange` (renameat2, one step) or `rename`. */
  how?: string;
  /** Where it stopped, when it did not switch. */
  phase?: string;
  error?: string;
  /** Milliseconds from the start of the activity to the end of each step: prepared, authorized, unpacked, ... */
  timeline: Record<string, number>;
}

export interface RelayPlatformResult {
  platform: string;
  /** The members in the order the stream went through them. */
  chain: string[];
  members: RelayMemberResult[];
  files: number;
  bytes: number;
  /** Bytes that left the controller (the tar stream, compressed when `compression` is zstd). */
  streamedBytes: number;
  compression: RelayCompression;
  /** Members whose relay key or staging directory could not be removed (the workflow retries the clean-up). */
  cleanupPending: string[];
  timings: { setupMs: number; streamMs: number; verifyMs: number; cleanupMs: number };
}

export interface RelayPlatformInput {
  platform: Platform;
  /** The members, in chain order. */
  servers: Server[];
  /** Names this operation in key comments (e.g. the workflow run id). */
  operation: string;
  /** Compress the stream with zstd -1 when the controller and every member have zstd. @default true */
  compress?: boolean;
}

function nodeArgv(
  member: MemberState,
  platform: string,
  input: 'stdin' | 'fifo',
  compression: RelayCompression,
  hop: string[],
): string[] {
  // setpriv, not runuser: no PAM session to open, on every member, on the critical path.
  const user = member.server.aegirUser;
  return [
    'setpriv',
    `--reuid=${user}`,
    `--regid=${member.prepared?.group ?? user}`,
    '--init-groups',
    '--reset-env',
    'sh',
    '-c',
    NODE_SCRIPT,
    'sitefleet-relay-node',
    relayStagingDir(member.server, platform),
    input,
    compression,
    ...hop,
  ];
}

let zstdHere: Promise<boolean> | undefined;

/** Whether this worker has zstd (looked up once per process). */
function controllerHasZstd(): Promise<boolean> {
  zstdHere ??= runLocal(['zstd', '--version']).then(
    (r) => r.code === 0,
    () => false,
  );
  return zstdHere;
}

/** openssl checks contents fastest but escapes names with a newline; sha256sum -z never escapes. */
export function digestTool(manifest: SourceManifest): 'openssl' | 'sha256sum' {
  return manifest.entries.some((e) => e.type === 'f' && e.path.includes('\n')) ? 'sha256sum' : 'openssl';
}

const NODE_RESULT = /sitefleet-relay tar=(\d+) tee=(\S+) next=(\S+)/;

/** Runs the chain's stream: every member's node at once (so every hop's ssh connects in parallel). */
async function streamChain(
  relay: RelayChain,
  manifest: SourceManifest,
  source: string,
  compression: RelayCompression,
  progress: { bytes: number; streamEnd: number },
  onUnpacked: (member: MemberState) => Promise<void>,
  signal?: AbortSignal,
): Promise<void> {
  const { chain, platform } = relay;
  const name = platform.name;
  const limitSeconds = Math.ceil(STREAM_TIMEOUT_MS / 1000);
  const hop = (i: number): string[] => {
    const next = chain[i + 1];
    if (!next) return [];
    return relayHopArgv(
      (chain[i] as MemberState).server,
      next.server,
      name,
      relay.hostKeyTypes.get(next.server.name) ?? 'ssh-ed25519',
    );
  };
  const unblock = (member: MemberState | undefined, what: 'stream-end' | 'stop-forwarding'): void => {
    if (!member || member.unpacked) return;
    void runRemote(
      member.server,
      ['sh', '-c', UNBLOCK_SCRIPT, 'sitefleet-relay-unblock', relayStagingDir(member.server, name), what],
      {
        timeoutMs: 20_000,
      },
    ).catch(() => undefined);
  };
  await settleBounded(chain, chain.length, async (member, i) => {
    member.phase = 'stream';
    try {
      let stdout: string;
      if (i === 0) {
        const r = await streamTarToServer(
          member.server,
          ['timeout', '-k', '5', String(limitSeconds), ...nodeArgv(member, name, 'stdin', compression, hop(i))],
          source,
          tarFileList(manifest),
          { timeoutMs: STREAM_TIMEOUT_MS, compression, signal, onProgress: (b) => (progress.bytes = b) },
        );
        if (r.sshCode !== 0) {
          throw new Error(`ssh to ${member.server.name} ended with ${r.sshCode}: ${r.stderr.trim().slice(-1000)}`);
        }
        if (r.tarCode !== 0)
          throw new Error(`tar of ${source} ended with ${r.tarCode}: ${r.stderr.trim().slice(-1000)}`);
        stdout = r.stdout;
      } else {
        const r = await runRemote(member.server, nodeArgv(member, name, 'fifo', compression, hop(i)), {
          timeoutMs: STREAM_TIMEOUT_MS,
          signal,
          describe: 'relay node',
        });
        stdout = r.stdout;
        if (!NODE_RESULT.test(stdout))
          throw new Error(`the relay node printed no result: ${r.stderr.trim().slice(-1000)}`);
      }
      const match = NODE_RESULT.exec(stdout);
      if (!match) throw new Error('the relay node printed no result');
      if (match[1] !== '0') throw new Error(`tar ended with ${match[1]} while unpacking`);
      member.unpacked = true;
    } catch (err) {
      progress.streamEnd = Math.max(progress.streamEnd, performance.now());
      fail(member, 'stream', err);
      // Whatever waits on this member now waits in vain: the next member for its stream, the previous one for
      // this member to read what it passes on.
      unblock(chain[i + 1], 'stream-end');
      unblock(chain[i - 1], 'stop-forwarding');
      return;
    }
    member.at.unpacked = performance.now();
    progress.streamEnd = Math.max(progress.streamEnd, member.at.unpacked);
    // Each member verifies and switches as soon as its own stream is through, while the others may still unpack.
    await onUnpacked(member);
  });
}

async function verifyAndSwitch(
  member: MemberState,
  platform: Platform,
  expected: Buffer,
  digest: 'openssl' | 'sha256sum',
  signal?: AbortSignal,
): Promise<void> {
  const { server } = member;
  member.phase = 'verify';
  const r = await runRemote(
    server,
    [
      'sh',
      '-c',
      VERIFY_AND_SWITCH_SCRIPT,
      'sitefleet-relay-switch',
      relayStagingDir(server, platform.name),
      platformRoot(server, platform.name),
      server.aegirUser,
      digest,
      ...platformFilterArgs(platform.profile),
    ],
    { timeoutMs: VERIFY_TIMEOUT_MS, stdin: expected, signal, allowExitCodes: 'any', describe: 'verify and switch' },
  );
  const switched = /sitefleet-relay switched=(\w+)/.exec(r.stdout);
  if (switched) {
    member.switched = true;
    member.how = switched[1];
    member.at.switched = performance.now();
    member.phase = 'hook';
    await ensureWordpressDispatcher(server, platform, signal);
    member.phase = 'done';
    member.at.hooked = performance.now();
    return;
  }
  const what = r.code === VERIFY_FAILED_EXIT ? 'verification failed' : `verify and switch exited ${r.code}`;
  throw new Error(`${what}: ${r.stderr.trim().slice(-1500) || '(no output)'}`);
}

/**
 * Relays the platform's code to `servers` (in chain order): one stream from this worker, passed on by the members,
 * verified on each against the manifest, switched in atomically, then the profile's hook (WordPress dispatcher)
 * as syncPlatform runs it. Never fails for a member's sake: each member has its own result, and members that did
 * not switch keep their previous version and no staging leftovers (or are listed in `cleanupPending`).
 */
export async function relayPlatform(input: RelayPlatformInput): Promise<RelayPlatformResult> {
  const signal = activityCancellationSignal();
  const platform = parseInput(platformSchema, input.platform, 'platform');
  const servers = parseInput(z.array(serverSchema).min(1).max(64), input.servers, 'servers');
  const operation = parseInput(z.string().regex(/^[A-Za-z0-9._-]{1,64}$/), input.operation, 'operation');
  if (input.compress !== undefined && typeof input.compress !== 'boolean')
    throw badInput('compress: must be true or false');
  if (new Set(servers.map((s) => s.name)).size !== servers.length) throw badInput('servers: a server is listed twice');

  const started = performance.now();
  const timings = { setupMs: 0, streamMs: 0, verifyMs: 0, cleanupMs: 0 };
  const progress = { phase: 'set up', bytes: 0, streamEnd: 0 };
  let members: MemberState[] = [];
  const beat = (): void =>
    heartbeatProgress({
      phase: progress.phase,
      bytes: progress.bytes,
      members: members.map(
        (m) => `${m.server.name}:${m.switched ? 'switched' : m.error ? `failed at ${m.phase}` : m.phase}`,
      ),
    });
  const ticker = setInterval(beat, HEARTBEAT_EVERY_MS);
  beat();
  let relay: RelayChain | undefined;
  let cleanupPending: string[] = [];
  let manifest: SourceManifest | undefined;
  let compression: RelayCompression = 'none';
  try {
    const source = await platformSourceDir(platform, signal);
    const [described, opened] = await Promise.all([
      describeSource(source, platform.profile, signal),
      openRelayChain(platform, servers, operation, { limitSeconds: Math.ceil(STREAM_TIMEOUT_MS / 1000), signal }),
    ]);
    manifest = described;
    relay = opened;
    members = relay.members;
    // Digests are needed only for verification: they are computed while the stream runs.
    const hashing = hashManifest(manifest, signal);
    hashing.catch(() => undefined);
    timings.setupMs = Math.round(performance.now() - started);

    progress.phase = 'stream';
    beat();
    const streamStarted = performance.now();
    compression =
      input.compress !== false && relay.chain.every((m) => m.prepared?.zstd) && (await controllerHasZstd())
        ? 'zstd'
        : 'none';
    const sent = manifest;
    const expected = hashing.then(() => gzipSync(expectedRecords(sent), { level: 1 }));
    expected.catch(() => undefined);
    const digest = digestTool(manifest);
    const onUnpacked = async (member: MemberState): Promise<void> => {
      // The member's key has done its job: it goes while the member verifies.
      const revoked = (relay as RelayChain).revokeKeys([member]);
      try {
        await verifyAndSwitch(member, platform, await expected, digest, signal);
      } catch (err) {
        fail(member, member.phase, err);
      }
      await revoked;
    };
    if (relay.chain.length > 0) {
      await streamChain(relay, manifest, source, compression, progress, onUnpacked, signal);
    }
    const done = performance.now();
    timings.streamMs = Math.round((progress.streamEnd || done) - streamStarted);
    timings.verifyMs = Math.round(done - (progress.streamEnd || done));
  } finally {
    clearInterval(ticker);
    if (relay) {
      progress.phase = 'clean up';
      const cleanupStarted = performance.now();
      cleanupPending = await relay.close();
      timings.cleanupMs = Math.round(performance.now() - cleanupStarted);
    }
  }
  const chainNames = new Set(relay.chain.map((m) => m.server.name));
  for (const m of members) {
    if (!m.switched && m.error === undefined)
      fail(m, m.phase, chainNames.has(m.server.name) ? 'did not finish' : 'not in the chain');
  }
  return {
    platform: platform.name,
    chain: relay.chain.map((m) => m.server.name),
    members: members.map((m) => ({
      server: m.server.name,
      existed: m.prepared?.existed ?? null,
      switched: m.switched,
      ...(m.how ? { how: m.how } : {}),
      ...(m.switched ? {} : { phase: m.phase, error: m.error }),
      timeline: Object.fromEntries(Object.entries(m.at).map(([step, t]) => [step, Math.round(t - started)])),
    })),
    files: manifest?.entries.length ?? 0,
    bytes: manifest?.bytes ?? 0,
    streamedBytes: progress.bytes,
    compression,
    cleanupPending,
    timings,
  };
}
