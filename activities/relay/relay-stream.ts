/**
 * The controller's end of a relay: GNU tar reads the platform source (the manifest's paths, in order, with the
 * push's chmod) and its stream goes to the first member over OpenSSH (the pooled node-ssh connections of ssh.ts
 * take a command's stdin as one buffer, not as a stream).
 *
 * The OpenSSH connection is pinned like rsync's: the server's full host key comes from the pooled connection, whose
 * verifier has just checked it against the inventory's SHA256 fingerprint, and is the only key in a known_hosts
 * file of this stream, used with StrictHostKeyChecking=yes.
 */
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
import { startLocal, type LocalProcessResult } from '../transport/local-process';
import { knownHostsLine, pinnedSshOptions } from '../transport/openssh-options';

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
  const stop = new AbortController();
  const timer = setTimeout(
    () =>
      stop.abort(
        transientFailure(
          FailureType.RemoteCommandTimeout,
          `server ${server.name}: the relay stream did not finish within ${Math.ceil(options.timeoutMs / 1000)} s`,
        ),
      ),
    options.timeoutMs,
  );
  const onAbort = (): void => stop.abort(abortReason(options.signal as AbortSignal));
  options.signal?.addEventListener('abort', onAbort, { once: true });
  try {
    const knownHostsFile = join(dir, 'known_hosts');
    await writeFile(knownHostsFile, knownHostsLine(alias, key), { mode: 0o600 });
    const sudo = server.ssh.user === 'root' ? [] : ['sudo', '-n', '--'];
    const sshArgv = [
      'ssh',
      ...pinnedSshOptions(
        {
          port: server.ssh.port,
          user: server.ssh.user,
          identityFile: await privateKeyPathFor(server),
          knownHostsFile,
          hostKeyAlias: alias,
          hostKeyType: key.type,
        },
        { stream: true, kexAlgorithms: RELAY_KEX, ciphers: RELAY_CIPHERS },
      ),
      server.host,
      '--',
      quoteArgs([...sudo, ...argv]),
    ];
    const tar = startLocal(['tar', ...relayTarArgv(source, options.compression)], {
      stdin: fileList,
      stdout: 'stream',
      signal: stop.signal,
    });
    let bytes = 0;
    tar.stdout.on('data', (chunk: Buffer) => {
      bytes += chunk.length;
      options.onProgress?.(bytes);
    });
    // ssh gone (the member died): the stream into it is destroyed, which ends tar, which is what we want.
    const ssh = startLocal(sshArgv, { stdin: tar.stdout, signal: stop.signal });
    // Either process failing to run stops the other.
    const [tarRun, sshRun] = await Promise.allSettled(
      [tar.result, ssh.result].map((r) =>
        r.catch((err: unknown) => {
          if (!stop.signal.aborted) stop.abort(err);
          throw err;
        }),
      ),
    );
    if (tarRun?.status === 'rejected') throw tarRun.reason;
    if (sshRun?.status === 'rejected') throw sshRun.reason;
    const tarDone = (tarRun as PromiseFulfilledResult<LocalProcessResult>).value;
    const sshDone = (sshRun as PromiseFulfilledResult<LocalProcessResult>).value;
    return {
      tarCode: tarDone.code,
      sshCode: sshDone.code,
      bytes,
      stdout: sshDone.stdout,
      stderr: tarDone.stderr + sshDone.stderr,
    };
  } finally {
    clearTimeout(timer);
    options.signal?.removeEventListener('abort', onAbort);
    await rm(dir, { recursive: true, force: true });
  }
}
