/**
 * The controller's end of a relay: GNU tar reads the platform source (the manifest's paths, in order, with the
 * push's chmod) and its stream goes to the first member over OpenSSH (the pooled node-ssh connections of ssh.ts
 * take a command's stdin as one buffer, not as a stream).
 *
 * The OpenSSH connection is pinned like rsync's: the server's full host key comes from the pooled connection, whose
 * verifier has just checked it against the inventory's SHA256 fingerprint, and is the only key in a known_hosts
 * file of this stream, used with StrictHostKeyChecking=yes.
 */
import { spawn } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Server } from '../../domain/model';
import { abortReason } from '../support/activity-context';
import { FailureType, transientFailure } from '../../common/failures';
import { RELAY_CHMOD } from './relay-manifest';
import { RELAY_BLOCKING_FACTOR } from './relay-scripts';
import { quoteArgs } from '../transport/shell-quote';
import { privateKeyPathFor, verifiedHostKey } from '../transport/ssh';

/** Fast ciphers first: AES-GCM runs on the CPU's AES instructions; the stream is already incompressible enough. */
export const RELAY_CIPHERS = 'aes128-gcm@openssh.com,aes256-gcm@openssh.com,chacha20-poly1305@openssh.com';
export const RELAY_KEX = 'curve25519-sha256,curve25519-sha256@libssh.org';

export interface StreamResult {
  /** Exit code of the local tar. */
  tarCode: number | null;
  /** Exit code of ssh: the remote command's, or 255 when ssh itself failed. */
  sshCode: number | null;
  /** Bytes tar produced and ssh took. */
  bytes: number;
  stdout: string;
  stderr: string;
}

function hostKeyAlgorithms(keyType: string): string {
  return keyType === 'ssh-rsa' ? 'rsa-sha2-512,rsa-sha2-256' : keyType;
}

/** How the stream is compressed: zstd when the controller and every member of the chain have it. */
export type RelayCompression = 'zstd' | 'none';

/**
 * GNU tar's arguments for the relay stream of `source`: the paths come NUL-separated on stdin (the manifest's
 * order), nothing else is recursed into, hard links become files (as rsync -a without -H sends them), modes get the
 * push's chmod, owners are left to the unpacking user.
 */
export function relayTarArgv(source: string, compression: RelayCompression = 'none'): string[] {
  return [
    // zstd -1 runs at several hundred MB/s: never the bottleneck of a link slow enough for a relay.
    ...(compression === 'zstd' ? ['--use-compress-program=zstd -1'] : []),
    '--create',
    '--file=-',
    '--format=gnu',
    // 64 KiB records: a pipe's worth per read and write on every member (tar's default is 10 KiB).
    `--blocking-factor=${RELAY_BLOCKING_FACTOR}`,
    `--directory=${source}`,
    // Positional: --no-recursion and --null must come before the list they apply to.
    '--no-recursion',
    '--null',
    '--hard-dereference',
    `--mode=${RELAY_CHMOD}`,
    '--owner=0',
    '--group=0',
    '--numeric-owner',
    '--files-from=-',
  ];
}

/**
 * Runs `argv` on `server` (through `sudo -n` for a non-root ssh user) with the tar stream of `fileList` under
 * `source` as its stdin. Kills both ends when `signal` fires or `timeoutMs` passes.
 */
export async function streamTarToServer(
  server: Server,
  argv: readonly string[],
  source: string,
  fileList: Buffer,
  options: {
    timeoutMs: number;
    compression?: RelayCompression;
    signal?: AbortSignal;
    onProgress?: (bytes: number) => void;
  },
): Promise<StreamResult> {
  if (options.signal?.aborted) throw abortReason(options.signal);
  const key = await verifiedHostKey(server);
  const dir = await mkdtemp(join(tmpdir(), 'sitefleet-relay-'));
  const alias = `sitefleet-relay-${server.name}`;
  try {
    const knownHosts = join(dir, 'known_hosts');
    await writeFile(knownHosts, `${alias} ${key.type} ${key.blob.toString('base64')}\n`, { mode: 0o600 });
    const sudo = server.ssh.user === 'root' ? [] : ['sudo', '-n', '--'];
    const sshArgv = [
      '-F',
      '/dev/null',
      '-T',
      '-i',
      await privateKeyPathFor(server),
      '-o',
      'IdentitiesOnly=yes',
      '-o',
      'BatchMode=yes',
      '-o',
      'StrictHostKeyChecking=yes',
      '-o',
      `UserKnownHostsFile=${knownHosts}`,
      '-o',
      'GlobalKnownHostsFile=/dev/null',
      '-o',
      `HostKeyAlias=${alias}`,
      '-o',
      `HostKeyAlgorithms=${hostKeyAlgorithms(key.type)}`,
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
      'ConnectTimeout=10',
      '-o',
      'ServerAliveInterval=10',
      '-o',
      'ServerAliveCountMax=3',
      '-o',
      'LogLevel=ERROR',
      '-p',
      String(server.ssh.port),
      '-l',
      server.ssh.user,
      server.host,
      '--',
      quoteArgs([...sudo, ...argv]),
    ];
    const tarArgv = relayTarArgv(source, options.compression);
    return await new Promise<StreamResult>((resolve, reject) => {
      const tar = spawn('tar', tarArgv, { stdio: ['pipe', 'pipe', 'pipe'] });
      const ssh = spawn('ssh', sshArgv, { stdio: ['pipe', 'pipe', 'pipe'] });
      const out: Buffer[] = [];
      const err: Buffer[] = [];
      let bytes = 0;
      let tarCode: number | null | undefined;
      let sshCode: number | null | undefined;
      let failure: Error | undefined;
      const stop = (): void => {
        tar.kill('SIGTERM');
        ssh.kill('SIGTERM');
      };
      const timer = setTimeout(() => {
        failure = transientFailure(
          FailureType.RemoteCommandTimeout,
          `server ${server.name}: the relay stream did not finish within ${Math.ceil(options.timeoutMs / 1000)} s`,
        );
        stop();
      }, options.timeoutMs);
      const onAbort = (): void => {
        failure = abortReason(options.signal as AbortSignal);
        stop();
      };
      options.signal?.addEventListener('abort', onAbort, { once: true });
      const settle = (): void => {
        if (tarCode === undefined || sshCode === undefined) return;
        clearTimeout(timer);
        options.signal?.removeEventListener('abort', onAbort);
        if (failure) reject(failure);
        else {
          resolve({
            tarCode,
            sshCode,
            bytes,
            stdout: Buffer.concat(out).toString('utf8'),
            stderr: Buffer.concat(err).toString('utf8'),
          });
        }
      };
      tar.stdout.on('data', (chunk: Buffer) => {
        bytes += chunk.length;
        options.onProgress?.(bytes);
      });
      tar.stdout.pipe(ssh.stdin);
      // ssh gone (the member died): tar's writes fail; that ends tar, which is what we want.
      ssh.stdin.on('error', () => tar.kill('SIGTERM'));
      tar.stdin.on('error', () => undefined);
      tar.stdin.end(fileList);
      tar.stderr.on('data', (chunk: Buffer) => err.push(chunk));
      ssh.stderr.on('data', (chunk: Buffer) => err.push(chunk));
      ssh.stdout.on('data', (chunk: Buffer) => out.push(chunk));
      tar.on('error', (e) => {
        failure ??= e;
        tarCode = null;
        ssh.kill('SIGTERM');
        settle();
      });
      ssh.on('error', (e) => {
        failure ??= e;
        sshCode = null;
        tar.kill('SIGTERM');
        settle();
      });
      tar.on('close', (code) => {
        tarCode = code;
        settle();
      });
      ssh.on('close', (code) => {
        sshCode = code;
        settle();
      });
    });
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}
