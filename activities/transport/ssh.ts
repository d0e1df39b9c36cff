/**
 * The ssh connection pool. One pooled connection per host per worker process, opened with the host key pinned
 * (`server.ssh.hostKey`, an OpenSSH SHA256 fingerprint) and reused by every activity that runs on that host.
 * Commands run over it through ssh-command.ts.
 */
import { sshFingerprintOf } from '../../common/ssh-fingerprint';
import { readFile } from 'node:fs/promises';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { NodeSSH } from 'node-ssh';
import type { Algorithms, Client, ClientChannel, ClientErrorExtensions } from 'ssh2';
import { Context } from '@temporalio/activity';
import type { Server } from '../../domain/model';
import { Semaphore } from '../support/concurrency-limits';
import { FailureType, permanentFailure, transientFailure } from '../../common/failures';

/** How long a connection attempt may take before the host counts as unreachable. @default 10 s */
const CONNECT_TIMEOUT_MS = 10_000;
/** Channels open at once on one connection; OpenSSH's MaxSessions defaults to 10. */
const CHANNELS_PER_CONNECTION = 8;
/** A command's output beyond this is refused rather than held in memory. */
export const MAX_OUTPUT_BYTES = 64 * 1024 * 1024;
/** Grace between the remote `timeout` sending TERM and KILL, and between that and the local deadline. */
export const KILL_GRACE_SECONDS = 5;

/**
 * Fast algorithms first: curve25519 key exchange connects in ~120 ms here against ~190 ms for the default list;
 * ed25519 host keys first so that the key a host presents is the one operators pin (`ssh-keygen -lf`).
 */
const ALGORITHMS: Algorithms = {
  kex: [
    'curve25519-sha256',
    'curve25519-sha256@libssh.org',
    'ecdh-sha2-nistp256',
    'ecdh-sha2-nistp384',
    'diffie-hellman-group14-sha256',
    'diffie-hellman-group16-sha512',
  ],
  serverHostKey: ['ssh-ed25519', 'ecdsa-sha2-nistp256', 'ecdsa-sha2-nistp384', 'rsa-sha2-512', 'rsa-sha2-256'],
  cipher: ['aes128-gcm@openssh.com', 'aes256-gcm@openssh.com', 'chacha20-poly1305@openssh.com', 'aes128-ctr'],
};

/** ssh2's client and exec channel (@types/ssh2), under the names the transport uses. */
export type Ssh2Client = Client;
export type Ssh2Channel = ClientChannel;
/** What ssh2 adds to a connect error (`code` from the socket). */
type Ssh2Error = Error & ClientErrorExtensions & { code?: string };

/**
 * What every connection to `server` is opened with (address, user, timeout, algorithms); `hostVerifier` sees the
 * host key the server presents, `auth` adds the credentials and the rest.
 */
type ConnectConfig = Parameters<NodeSSH['connect']>[0];

function connectConfig(
  server: Server,
  hostVerifier: (hostKey: Buffer) => boolean,
  auth: Omit<ConnectConfig, 'host' | 'port' | 'username' | 'hostVerifier'>,
): ConnectConfig {
  return {
    host: server.host,
    port: server.ssh.port,
    username: server.ssh.user,
    readyTimeout: CONNECT_TIMEOUT_MS,
    algorithms: ALGORITHMS,
    hostVerifier,
    ...auth,
  };
}

export interface PooledConnection {
  ssh: NodeSSH;
  client: Ssh2Client;
  /** The host key the server presented, already checked against the pin. */
  hostKey: Buffer;
  channels: Semaphore;
  closed: boolean;
}

const pool = new Map<string, Promise<PooledConnection>>();
const closeHooks = new Set<() => Promise<void>>();
/** Called with a server's name when its host key no longer matches the pin (rsync drops its control master). */
const forgetHooks = new Set<(serverName: string) => Promise<void>>();

/** `user@host:port` of a server, for messages. */
export function sshTarget(server: Server): string {
  return `${server.ssh.user}@${server.host}:${server.ssh.port}`;
}

function poolKey(server: Server): string {
  return [
    server.name,
    server.ssh.user,
    server.host,
    server.ssh.port,
    server.ssh.hostKey,
    server.ssh.keyPath ?? '',
  ].join('|');
}

/**
 * The private key a server is reached with: its own `ssh.keyPath`, else $SITEFLEET_SSH_KEY, else the first of
 * ~/.ssh/id_ed25519, id_ecdsa, id_rsa.
 */
export async function privateKeyPathFor(server: Server): Promise<string> {
  if (server.ssh.keyPath) return server.ssh.keyPath;
  const fromEnv = process.env.SITEFLEET_SSH_KEY;
  if (fromEnv) return fromEnv;
  const candidates = ['id_ed25519', 'id_ecdsa', 'id_rsa'].map((f) => join(homedir(), '.ssh', f));
  for (const path of candidates) {
    try {
      await readFile(path);
      return path;
    } catch {
      // try the next one
    }
  }
  throw permanentFailure(
    FailureType.SshAuthenticationFailed,
    `server ${server.name}: no ssh private key: set ssh.keyPath on the server or SITEFLEET_SSH_KEY for the worker (looked for ${candidates.join(', ')})`,
  );
}

async function openConnection(server: Server, key: string): Promise<PooledConnection> {
  const keyPath = await privateKeyPathFor(server);
  let privateKey: string;
  try {
    privateKey = await readFile(keyPath, 'utf8');
  } catch (err) {
    throw permanentFailure(
      FailureType.SshAuthenticationFailed,
      `server ${server.name}: cannot read the ssh private key ${keyPath}: ${(err as Error).message}`,
    );
  }
  let presented: Buffer | undefined;
  const ssh = new NodeSSH();
  try {
    const pinned = (hostKey: Buffer) => {
      presented = hostKey;
      return sshFingerprintOf(hostKey) === server.ssh.hostKey;
    };
    await ssh.connect(connectConfig(server, pinned, { privateKey, keepaliveInterval: 10_000, keepaliveCountMax: 3 }));
  } catch (err) {
    closeSsh(ssh);
    if (presented && sshFingerprintOf(presented) !== server.ssh.hostKey) {
      await Promise.allSettled([...forgetHooks].map((hook) => hook(server.name)));
      throw hostKeyMismatch(server, sshFingerprintOf(presented));
    }
    throw connectFailure(server, err as Ssh2Error, keyPath);
  }
  const client = ssh.connection!;
  const pooled: PooledConnection = {
    ssh,
    client,
    hostKey: presented as Buffer,
    channels: new Semaphore(CHANNELS_PER_CONNECTION),
    closed: false,
  };
  const forget = (): void => {
    pooled.closed = true;
    void pool.get(key)?.then((current) => {
      if (current === pooled) pool.delete(key);
    });
  };
  // Without a listener an 'error' (keepalive timeout, reset) would crash the worker process.
  client.on('error', forget);
  client.on('close', forget);
  client.on('end', forget);
  return pooled;
}

export function hostKeyMismatch(server: Server, presented: string): Error {
  return permanentFailure(
    FailureType.HostKeyMismatch,
    `server ${server.name} (${server.host}:${server.ssh.port}): host key mismatch: expected ${server.ssh.hostKey} (pinned), ` +
      `got ${presented}. Nothing was changed on it. Either the server was reinstalled or someone is in between: ` +
      'compare with the key on its console (`ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub`); if the new key is ' +
      `the right one, re-pin it: \`sitefleet server repin ${server.name}\` (shows the key the server offers; --yes pins it).`,
    { server: server.name, host: server.host, pinned: server.ssh.hostKey, presented },
  );
}

function connectFailure(server: Server, err: Ssh2Error, keyPath: string): Error {
  if (err.level === 'client-authentication') {
    return permanentFailure(
      FailureType.SshAuthenticationFailed,
      `server ${server.name}: ${sshTarget(server)} refused the key ${keyPath}. Add its public key to ` +
        `~${server.ssh.user}/.ssh/authorized_keys on the server, then retry.`,
    );
  }
  const reason = err.code ? `${err.code} (${err.message})` : err.message;
  return transientFailure(
    FailureType.HostUnreachable,
    `server ${server.name}: cannot reach ${sshTarget(server)} over ssh: ${reason}. Check that the host is up and sshd listens there.`,
    { server: server.name, host: server.host, port: server.ssh.port, code: err.code ?? err.level ?? null },
  );
}

/** The pooled connection to a server, opened (host key checked against the pin) when there is none. */
export async function connection(server: Server): Promise<PooledConnection> {
  const key = poolKey(server);
  const existing = pool.get(key);
  if (existing) {
    const pooled = await existing.catch(() => undefined);
    if (pooled && !pooled.closed) return pooled;
    if (pool.get(key) === existing) pool.delete(key);
  }
  const opening = openConnection(server, key);
  pool.set(key, opening);
  opening.catch(() => {
    if (pool.get(key) === opening) pool.delete(key);
  });
  return opening;
}

/** How long a closed connection may wait for the server's side of the close before its socket is destroyed. */
const CLOSE_GRACE_MS = 2000;

/**
 * Ends an ssh connection: ssh's disconnect message and a TCP close (node-ssh's dispose), then, if the server has not
 * closed its side within CLOSE_GRACE_MS, the socket is destroyed. A server that died or froze after our close never
 * answers it; the half-closed socket (FIN-WAIT-2) would then keep this process alive for ever (CI saw a test file
 * that never exited after its VM host was stopped). ssh2's own destroy() does nothing once end() has run (it wants
 * a writable socket), so the socket itself is destroyed.
 */
function closeSsh(ssh: NodeSSH): void {
  const socket = (ssh.connection as (Client & { _sock?: { destroyed: boolean; destroy(): void } }) | null)?._sock;
  ssh.dispose();
  if (socket && !socket.destroyed) {
    setTimeout(() => {
      if (!socket.destroyed) socket.destroy();
    }, CLOSE_GRACE_MS).unref();
  }
}

/** Drops a pooled connection that failed under us, so the next call opens a fresh one. */
export function discard(server: Server, pooled: PooledConnection): void {
  pooled.closed = true;
  closeSsh(pooled.ssh);
  const key = poolKey(server);
  void pool.get(key)?.then((current) => {
    if (current === pooled) pool.delete(key);
  });
}

/**
 * Asks the server for its current host key on a new connection (the key exchange only: no authentication, no
 * session) and returns its fingerprint. A pooled connection or an OpenSSH control master proves nothing about the
 * key the server has now, nor that it still accepts connections.
 *
 * @throws HostUnreachable when no new connection can be made.
 */
export async function presentedHostKey(server: Server): Promise<{ fingerprint: string; blob: Buffer }> {
  let presented: Buffer | undefined;
  const ssh = new NodeSSH();
  try {
    const refuse = (hostKey: Buffer) => {
      presented = hostKey;
      return false;
    };
    // The password is never used: the verifier ends the connection before authentication.
    await ssh.connect(connectConfig(server, refuse, { password: 'unused', tryKeyboard: false }));
  } catch (err) {
    if (!presented) throw connectFailure(server, err as Ssh2Error, '(none)');
  } finally {
    closeSsh(ssh);
  }
  if (!presented) {
    throw transientFailure(
      FailureType.HostUnreachable,
      `server ${server.name}: ${sshTarget(server)} presented no host key`,
      { server: server.name, host: server.host, port: server.ssh.port, code: null },
    );
  }
  return { fingerprint: sshFingerprintOf(presented), blob: presented };
}

/**
 * Drops every pooled connection to a server and whatever else holds one open (rsync's control master), so that
 * nothing keeps talking to a host whose key no longer matches.
 */
export async function forgetServer(serverName: string): Promise<void> {
  for (const [key, entry] of [...pool.entries()]) {
    if (!key.startsWith(`${serverName}|`)) continue;
    pool.delete(key);
    const pooled = await entry.catch(() => undefined);
    if (pooled) {
      pooled.closed = true;
      closeSsh(pooled.ssh);
    }
  }
  await Promise.allSettled([...forgetHooks].map((hook) => hook(serverName)));
}

/** Registers clean-up for forgetServer (rsync's control master of that server). */
export function onForgetServer(hook: (serverName: string) => Promise<void>): void {
  forgetHooks.add(hook);
}

/**
 * Confirms on a new connection that the server presents its pinned host key. On a mismatch every pooled
 * connection and control master to it is dropped, and the error names both fingerprints.
 *
 * @throws HostKeyMismatch (not retryable), HostUnreachable (retryable)
 */
export async function confirmHostKey(server: Server): Promise<{ fingerprint: string; blob: Buffer }> {
  const key = await presentedHostKey(server);
  if (key.fingerprint !== server.ssh.hostKey) {
    await forgetServer(server.name);
    throw hostKeyMismatch(server, key.fingerprint);
  }
  return key;
}

/** Per running activity: the servers whose key it has confirmed on a new connection (a promise, shared). */
const confirmedIn = new WeakMap<object, Map<string, Promise<void>>>();

function currentActivity(): object | undefined {
  try {
    return Context.current();
  } catch {
    return undefined;
  }
}

/**
 * Every activity confirms a server's host key on a new connection before its first command there, whatever the
 * pool holds: an operation never acts on a host on the word of a connection opened before the key changed. Once
 * per activity execution and server (~one key exchange). Outside an activity (tests, scripts) the check made when
 * a pooled connection opens is the only one.
 */
export async function confirmedForThisActivity(server: Server): Promise<void> {
  const activity = currentActivity();
  if (!activity) return;
  let confirmed = confirmedIn.get(activity);
  if (!confirmed) {
    confirmed = new Map();
    confirmedIn.set(activity, confirmed);
  }
  const key = poolKey(server);
  let pending = confirmed.get(key);
  if (!pending) {
    pending = confirmHostKey(server).then(() => undefined);
    confirmed.set(key, pending);
    pending.catch(() => {
      if (confirmed.get(key) === pending) confirmed.delete(key);
    });
  }
  await pending;
}

/**
 * The server's host key, checked against the pin: inside an activity on a new connection (see
 * confirmedForThisActivity), then the pooled connection's key.
 */
export async function verifiedHostKey(server: Server): Promise<{ type: string; blob: Buffer; fingerprint: string }> {
  await confirmedForThisActivity(server);
  const { hostKey } = await connection(server);
  const length = hostKey.readUInt32BE(0);
  return {
    type: hostKey.subarray(4, 4 + length).toString('ascii'),
    blob: hostKey,
    fingerprint: sshFingerprintOf(hostKey),
  };
}

/** Registers clean-up to run by closeAllConnections (rsync's ssh control masters). */
export function onCloseAllConnections(hook: () => Promise<void>): void {
  closeHooks.add(hook);
}

/** Closes every pooled connection of this worker process (worker shutdown, end of a test file). */
export async function closeAllConnections(): Promise<void> {
  const opening = [...pool.values()];
  pool.clear();
  const settled = await Promise.allSettled(opening);
  for (const s of settled) {
    if (s.status === 'fulfilled') {
      s.value.closed = true;
      closeSsh(s.value.ssh);
    }
  }
  await Promise.allSettled([...closeHooks].map((hook) => hook()));
}
