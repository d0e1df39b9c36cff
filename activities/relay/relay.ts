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
import { execFile } from 'node:child_process';
import { gzipSync } from 'node:zlib';
import { z } from 'zod';
import { platformSchema, serverSchema, type Platform, type Server } from '../../domain/model';
import { platformRoot, platformsDir } from '../../domain/paths';
import { activityCancellationSignal, heartbeatProgress } from '../support/activity-context';
import { parseInput } from '../support/activity-input';
import { settleBounded } from '../../common/settle';
import { badInput } from '../../common/failures';
import { ensureManagedBlock, removeManagedBlock } from '../transport/managed-block';
import { platformSourceDir } from '../platform-source';
import {
  describeSource,
  expectedRecords,
  hashManifest,
  platformFilterArgs,
  tarFileList,
  type SourceManifest,
} from './relay-manifest';
import {
  CLEANUP_SCRIPT,
  NODE_SCRIPT,
  PREPARE_SCRIPT,
  RECEIVE_COMMAND,
  UNBLOCK_SCRIPT,
  UNSUPPORTED_EXIT,
  VERIFY_AND_SWITCH_SCRIPT,
  VERIFY_FAILED_EXIT,
} from './relay-scripts';
import { RELAY_CIPHERS, RELAY_KEX, type RelayCompression, streamTarToServer } from './relay-stream';
import { editRemoteFile, readRemoteFile } from '../transport/remote-file';
import { ensureWordpressDispatcher } from '../site-files';
import { verifiedHostKey } from '../transport/ssh';
import { runRemote } from '../transport/ssh-command';
import { messageOf } from '../../common/error-message';

/** How long the stream may run before it is stopped. @default 30 minutes */
const STREAM_TIMEOUT_MS = 30 * 60_000;
/** Set-up and clean-up commands. */
const SHORT_TIMEOUT_MS = 60_000;
/** Verification reads every file again; give it time on big platforms. */
const VERIFY_TIMEOUT_MS = 15 * 60_000;
const HEARTBEAT_EVERY_MS = 5_000;
/** Characters allowed in the staging path: it is written into authorized_keys and the receive script. */
const SAFE_PATH = /^\/[A-Za-z0-9._@+/-]+$/;

/** The staging directory of a relay of `platform` on `server`: beside the platform, so renames are atomic. */
export function relayStagingDir(server: Server, platform: string): string {
  const dir = `${platformsDir(server)}/.sitefleet-relay-${platform}`;
  if (!SAFE_PATH.test(dir)) throw badInput(`relay staging path ${dir} has characters that cannot be used`);
  return dir;
}

/** The managed-block marker of a platform's relay keys in authorized_keys. */
export function relayKeyMarker(platform: string): string {
  return `sitefleet:relay:${platform}`;
}

/** The address other members use to reach `server`. */
function memberAddress(server: Server): string {
  return server.address ?? server.host;
}

function hostKeyAlias(server: Server): string {
  return `sitefleet-relay-${server.name}`;
}

interface Prepared {
  existed: boolean;
  group: string;
  home: string;
  pubkey: string;
  /** Whether zstd is installed (the stream is compressed only when every member has it). */
  zstd: boolean;
  /** The source address this member's packets to each other member's address leave from. */
  routes: Map<string, string>;
  /** When the relay keys stop being accepted, in the member's own local time (YYYYMMDDHHMM). */
  expiry: string;
}

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

interface MemberState {
  server: Server;
  prepared?: Prepared;
  /** A staging directory may exist on the member: clean it up. */
  staged: boolean;
  /** A key may have been authorized on the member: remove the block. */
  authorized: boolean;
  unpacked: boolean;
  switched: boolean;
  how?: string;
  phase: string;
  error?: string;
  /** When each step ended (performance.now()), for the result's timeline. */
  at: Record<string, number>;
}

function fail(member: MemberState, phase: string, err: unknown): void {
  if (member.error !== undefined) return;
  member.phase = phase;
  member.error = messageOf(err);
}

function parseKeyValues(stdout: string): Map<string, string[]> {
  const values = new Map<string, string[]>();
  for (const line of stdout.split('\n')) {
    const at = line.indexOf('=');
    if (at <= 0) continue;
    const key = line.slice(0, at);
    values.set(key, [...(values.get(key) ?? []), line.slice(at + 1)]);
  }
  return values;
}

async function prepareMember(
  member: MemberState,
  platform: Platform,
  operation: string,
  knownHosts: string,
  others: Server[],
  limitSeconds: number,
  signal?: AbortSignal,
): Promise<Prepared> {
  const { server } = member;
  member.staged = true;
  const result = await runRemote(
    server,
    [
      'sh',
      '-c',
      `${PREPARE_SCRIPT}\necho "expiry=$(date -d '+${Math.ceil(limitSeconds / 60) + 10} minutes' +%Y%m%d%H%M)"\n`,
      'sitefleet-relay-prepare',
      relayStagingDir(server, platform.name),
      platformRoot(server, platform.name),
      server.aegirUser,
      `sitefleet-relay:${platform.name}:${operation}:${server.name}`,
      String(limitSeconds),
      ...others.map(memberAddress),
    ],
    {
      timeoutMs: SHORT_TIMEOUT_MS,
      stdin: knownHosts,
      signal,
      describe: 'prepare the relay',
      allowExitCodes: [0, UNSUPPORTED_EXIT],
    },
  );
  if (result.code === UNSUPPORTED_EXIT) throw new Error(result.stderr.trim() || 'cannot take part in a relay');
  const values = parseKeyValues(result.stdout);
  const one = (key: string): string => {
    const v = values.get(key)?.[0];
    if (v === undefined || v === '') throw new Error(`prepare printed no ${key}`);
    return v;
  };
  const routes = new Map<string, string>();
  for (const line of values.get('route') ?? []) {
    const [addr, src] = line.split(' ');
    if (addr && src) routes.set(addr, src);
  }
  return {
    existed: one('existed') === 'yes',
    group: one('group'),
    home: one('home'),
    pubkey: one('pubkey'),
    zstd: one('zstd') === 'yes',
    routes,
    expiry: one('expiry'),
  };
}

/** The authorized_keys line of a relay key: only `receive`, only from the sender, only until `expiry`. */
export function relayAuthorizedKey(pubkey: string, from: string, staging: string, expiry: string): string {
  const [type, blob, ...comment] = pubkey.trim().split(/\s+/);
  if (type !== 'ssh-ed25519' || !blob || !/^[A-Za-z0-9+/=]+$/.test(blob)) {
    throw new Error(`not an ed25519 public key: ${pubkey.slice(0, 80)}`);
  }
  if (!/^[0-9a-fA-F.:]+$/.test(from)) throw new Error(`not an IP address: ${from}`);
  if (!/^\d{12}$/.test(expiry)) throw new Error(`not an expiry time: ${expiry}`);
  const options = [
    'restrict',
    'no-pty',
    'no-port-forwarding',
    'no-agent-forwarding',
    'no-X11-forwarding',
    'no-user-rc',
    `from="${from}"`,
    `expiry-time="${expiry}"`,
    `command="/bin/sh ${staging}/receive"`,
  ];
  return `${options.join(',')} ${type} ${blob} ${comment.join(' ').replace(/[^A-Za-z0-9:._@-]/g, '')}`;
}

async function authorizeSender(
  receiver: MemberState,
  sender: MemberState,
  platform: Platform,
  signal?: AbortSignal,
): Promise<void> {
  const r = receiver.prepared as Prepared;
  const s = sender.prepared as Prepared;
  // The address the sender's packets leave from (its route to the receiver), else its inventory address.
  const fallback = memberAddress(sender.server);
  const from = s.routes.get(memberAddress(receiver.server)) ?? (/^[\d.]+$/.test(fallback) ? fallback : undefined);
  if (!from) {
    throw new Error(
      `${sender.server.name} found no route to ${receiver.server.name} (${memberAddress(receiver.server)})`,
    );
  }
  const line = relayAuthorizedKey(s.pubkey, from, relayStagingDir(receiver.server, platform.name), r.expiry);
  receiver.authorized = true;
  await editRemoteFile(
    receiver.server,
    `${r.home}/.ssh/authorized_keys`,
    (text) => ensureManagedBlock(text ?? '', relayKeyMarker(platform.name), line),
    { owner: receiver.server.aegirUser, group: r.group, mode: '0600', signal },
  );
}

/** The ssh command a member runs to pass the stream on: the relay key, the next member's pinned host key. */
export function relayHopArgv(sender: Server, receiver: Server, platform: string, hostKeyType: string): string[] {
  const staging = relayStagingDir(sender, platform);
  return [
    'ssh',
    '-F',
    '/dev/null',
    '-T',
    '-i',
    `${staging}/key`,
    '-o',
    'IdentitiesOnly=yes',
    '-o',
    'IdentityAgent=none',
    '-o',
    'BatchMode=yes',
    '-o',
    'StrictHostKeyChecking=yes',
    '-o',
    `UserKnownHostsFile=${staging}/known_hosts`,
    '-o',
    'GlobalKnownHostsFile=/dev/null',
    '-o',
    `HostKeyAlias=${hostKeyAlias(receiver)}`,
    '-o',
    `HostKeyAlgorithms=${hostKeyType === 'ssh-rsa' ? 'rsa-sha2-512,rsa-sha2-256' : hostKeyType}`,
    '-o',
    `KexAlgorithms=${RELAY_KEX}`,
    '-o',
    `Ciphers=${RELAY_CIPHERS}`,
    '-o',
    'Compression=no',
    '-o',
    'ControlMaster=no',
    '-o',
    'ControlPath=none',
    '-o',
    'ForwardAgent=no',
    '-o',
    'ForwardX11=no',
    '-o',
    'ClearAllForwardings=yes',
    '-o',
    'UpdateHostKeys=no',
    '-o',
    'ConnectTimeout=10',
    '-o',
    'ServerAliveInterval=5',
    '-o',
    'ServerAliveCountMax=3',
    '-o',
    'LogLevel=ERROR',
    '-p',
    String(receiver.ssh.port),
    '-l',
    receiver.aegirUser,
    memberAddress(receiver),
    RECEIVE_COMMAND,
  ];
}

export interface RelayChain {
  platform: Platform;
  members: MemberState[];
  /** The members the stream goes through, in order. */
  chain: MemberState[];
  hostKeyTypes: Map<string, string>;
  /** Removes the relay keys (of `members`, default all) once their stream is through. */
  revokeKeys(members?: MemberState[]): Promise<void>;
  /** Removes every relay key and staging directory left; returns the members where that failed. */
  close(): Promise<string[]>;
}

/**
 * Sets a chain up: every member's staging directory and relay key (prepared in parallel), then each member's
 * authorization of the previous member's key. A member that cannot be prepared is left out of the chain; a member
 * whose authorization fails ends the chain. Call `close()` in every case.
 */
export async function openRelayChain(
  platform: Platform,
  servers: Server[],
  operation: string,
  options: { limitSeconds: number; signal?: AbortSignal },
): Promise<RelayChain> {
  const members: MemberState[] = servers.map((server) => ({
    server,
    staged: false,
    authorized: false,
    unpacked: false,
    switched: false,
    phase: 'pending',
    at: {},
  }));
  const hostKeyTypes = new Map<string, string>();
  const keys = await settleBounded(servers, servers.length, (server) => verifiedHostKey(server));
  const knownHosts = servers
    .map((server, i) => {
      const k = keys[i];
      if (!k?.ok) return '';
      hostKeyTypes.set(server.name, k.value.type);
      return `${hostKeyAlias(server)} ${k.value.type} ${k.value.blob.toString('base64')}\n`;
    })
    .join('');
  keys.forEach((k, i) => {
    if (!k.ok) fail(members[i] as MemberState, 'connect', k.error);
  });
  await settleBounded(members, members.length, async (member) => {
    if (member.error !== undefined) return;
    member.phase = 'prepare';
    try {
      const others = servers.filter((s) => s.name !== member.server.name);
      member.prepared = await prepareMember(
        member,
        platform,
        operation,
        knownHosts,
        others,
        options.limitSeconds,
        options.signal,
      );
      member.at.prepared = performance.now();
    } catch (err) {
      fail(member, 'prepare', err);
    }
  });
  let chain = members.filter((m) => m.prepared !== undefined);
  const authorized = await settleBounded(chain.slice(1), chain.length, async (receiver, i) => {
    receiver.phase = 'authorize';
    await authorizeSender(receiver, chain[i] as MemberState, platform, options.signal);
    receiver.at.authorized = performance.now();
  });
  const broken = authorized.findIndex((a) => !a.ok);
  if (broken !== -1) {
    const failed = authorized[broken];
    for (const [i, m] of chain.slice(broken + 1).entries()) {
      fail(m, 'authorize', i === 0 && failed && !failed.ok ? failed.error : `the chain broke before ${m.server.name}`);
    }
    chain = chain.slice(0, broken + 1);
  }
  const revokeKeys = async (which: MemberState[] = members): Promise<void> => {
    await settleBounded(which, which.length, async (member) => {
      if (!member.authorized || !member.prepared) return;
      try {
        await removeRelayKeyBlock(member.server, platform.name, member.prepared.home, true);
        member.authorized = false;
      } catch {
        // close() tries again
      }
    });
  };
  const close = async (): Promise<string[]> => {
    const pending: string[] = [];
    await settleBounded(members, members.length, async (member) => {
      // A switched member's staging directory went with the switch.
      const staged = member.staged && !member.switched;
      if (!staged && !member.authorized) return;
      try {
        await Promise.all([
          staged ? removeStaging(member.server, platform.name) : undefined,
          member.authorized
            ? removeRelayKeyBlock(member.server, platform.name, member.prepared?.home, false)
            : undefined,
        ]);
        member.authorized = false;
      } catch {
        pending.push(member.server.name);
      }
    });
    return pending.sort();
  };
  return { platform, members, chain, hostKeyTypes, revokeKeys, close };
}

/** Stops what is left of a relay on a member and removes its staging directory. Idempotent. */
async function removeStaging(server: Server, platform: string): Promise<void> {
  const staging = relayStagingDir(server, platform);
  await runRemote(server, ['sh', '-c', CLEANUP_SCRIPT, 'sitefleet-relay-cleanup', staging, server.aegirUser], {
    timeoutMs: SHORT_TIMEOUT_MS,
    describe: 'clean up the relay',
  });
}

/**
 * Removes the platform's relay key block from the aegir user's authorized_keys (found in `home`, or looked up).
 * Unless `known` (the block was written by this relay), the file is read first, so that a member without one does
 * not get an empty authorized_keys. Idempotent.
 */
async function removeRelayKeyBlock(
  server: Server,
  platform: string,
  home: string | undefined,
  known: boolean,
): Promise<void> {
  const dir =
    home ??
    (
      await runRemote(server, ['sh', '-c', 'getent passwd "$1" | cut -d: -f6', 'sitefleet-home', server.aegirUser], {
        timeoutMs: SHORT_TIMEOUT_MS,
      })
    ).stdout.trim();
  if (!dir) return;
  const file = `${dir}/.ssh/authorized_keys`;
  const marker = relayKeyMarker(platform);
  if (!known) {
    const text = await readRemoteFile(server, file, { timeoutMs: SHORT_TIMEOUT_MS });
    if (text === null || !text.includes(marker)) return;
  }
  await editRemoteFile(server, file, (current) => (current === null ? '' : removeManagedBlock(current, marker)), {
    timeoutMs: SHORT_TIMEOUT_MS,
  });
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
  zstdHere ??= new Promise((resolve) => {
    execFile('zstd', ['--version'], (err) => resolve(!err));
  });
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

export interface CleanupRelayInput {
  server: Server;
  platform: Platform;
}

/** Removes what a relay of the platform left on a member (its key block, staging directory, processes). Idempotent. */
export async function cleanupRelay(input: CleanupRelayInput): Promise<{ server: string }> {
  const server = parseInput(serverSchema, input.server, 'server');
  const platform = parseInput(platformSchema, input.platform, 'platform');
  await Promise.all([
    removeStaging(server, platform.name),
    removeRelayKeyBlock(server, platform.name, undefined, false),
  ]);
  return { server: server.name };
}

export interface PlanPlatformTransferInput {
  platform: Platform;
  servers: Server[];
}

export interface TransferEstimate {
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

/**
 * What a push of the platform would send to each member: the whole platform where it is missing, otherwise the
 * files whose size or mtime differ (rsync's quick check). Read-only; the workflow decides relay or rsync from it.
 */
export async function planPlatformTransfer(input: PlanPlatformTransferInput): Promise<TransferEstimate> {
  const signal = activityCancellationSignal();
  const platform = parseInput(platformSchema, input.platform, 'platform');
  const servers = parseInput(z.array(serverSchema).min(1).max(64), input.servers, 'servers');
  const manifest = await describeSource(await platformSourceDir(platform, signal), platform.profile, signal);
  const files = new Map<string, { size: number; mtime: number }>();
  for (const e of manifest.entries) {
    if (e.type === 'f') files.set(Buffer.from(e.path, 'latin1').toString('utf8'), { size: e.size, mtime: e.mtime });
  }
  const results = await settleBounded(servers, servers.length, async (server) => {
    const root = platformRoot(server, platform.name);
    const r = await runRemote(
      server,
      [
        'sh',
        '-c',
        // Uploads are never pushed: not listed either (there may be a great many).
        '[ -d "$1" ] || { echo absent; exit 0; }; echo present; cd "$1" && ' +
          'find . \\( -path "./sites/*/files" -o -path "./sites/*/private" \\) -prune -o -type f -printf "%s %T@ %P\\0"',
        'sitefleet-relay-plan',
        root,
      ],
      { timeoutMs: SHORT_TIMEOUT_MS, signal },
    );
    if (r.stdout.startsWith('absent')) return { server: server.name, exists: false, changedBytes: manifest.bytes };
    const seen = new Map<string, { size: number; mtime: number }>();
    for (const record of r.stdout.slice(r.stdout.indexOf('\n') + 1).split('\0')) {
      const m = /^(\d+) (\d+)(?:\.\d+)? (.*)$/s.exec(record);
      if (m) seen.set(m[3] as string, { size: Number(m[1]), mtime: Number(m[2]) });
    }
    let changedBytes = 0;
    for (const [path, want] of files) {
      const have = seen.get(path);
      if (!have || have.size !== want.size || have.mtime !== want.mtime) changedBytes += want.size;
    }
    return { server: server.name, exists: true, changedBytes };
  });
  return {
    platform: platform.name,
    entries: manifest.entries.length,
    bytes: manifest.bytes,
    members: results.map((r, i) =>
      r.ok
        ? r.value
        : // Unreachable now: count it as a full copy; the transfer itself will retry or fall back.
          { server: (servers[i] as Server).name, exists: null, changedBytes: manifest.bytes },
    ),
  };
}
