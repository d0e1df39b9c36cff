/**
 * The chain of a relay (relay.ts runs the stream through it): every member's staging directory and relay key, each
 * member's authorization of the previous member's key (authorized_keys `restrict`, `command=`, `from=`,
 * `expiry-time=`, in a managed block), the ssh command of each hop with the next member's host key pinned from the
 * inventory, and the clean-up of all of it.
 */
import { platformSchema, serverSchema, type Platform, type Server } from '../../domain/model';
import { platformRoot, platformsDir } from '../../domain/paths';
import { parseInput } from '../support/activity-input';
import { settleBounded } from '../../common/settle';
import { badInput } from '../../common/failures';
import { ensureManagedBlock, removeManagedBlock } from '../transport/managed-block';
import { CLEANUP_SCRIPT, PREPARE_SCRIPT, RECEIVE_COMMAND, UNSUPPORTED_EXIT } from './relay-scripts';
import { RELAY_CIPHERS, RELAY_KEX } from './relay-stream';
import { editRemoteFile, readRemoteFile } from '../transport/remote-file';
import { verifiedHostKey } from '../transport/ssh';
import { knownHostsLine, pinnedSshOptions } from '../transport/openssh-options';
import { runRemote } from '../transport/ssh-command';
import { messageOf } from '../../common/error-message';

/** Set-up and clean-up commands. */
export const SHORT_TIMEOUT_MS = 60_000;
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

export interface MemberState {
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

export function fail(member: MemberState, phase: string, err: unknown): void {
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
    ...pinnedSshOptions(
      {
        port: receiver.ssh.port,
        user: receiver.aegirUser,
        identityFile: `${staging}/key`,
        knownHostsFile: `${staging}/known_hosts`,
        hostKeyAlias: hostKeyAlias(receiver),
        hostKeyType,
      },
      { stream: true, kexAlgorithms: RELAY_KEX, ciphers: RELAY_CIPHERS, serverAliveIntervalSeconds: 5 },
    ),
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
      return knownHostsLine(hostKeyAlias(server), k.value);
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
