/**
 * The one ssh runner: commands on a server over its pooled connection (ssh.ts). Commands are argument lists,
 * quoted by quoteArgs; every command has a timeout and stops when its activity is cancelled. `pipeRemote` streams
 * one command's output into another's input, on the same or another server.
 */
import type { Server } from '../../domain/model';
import { abortReason } from '../support/activity-context';
import { FailureType, permanentFailure, transientFailure } from '../../common/failures';
import { quoteArgs } from './shell-quote';
import {
  confirmedForThisActivity,
  connection,
  discard,
  KILL_GRACE_SECONDS,
  MAX_OUTPUT_BYTES,
  type Ssh2Channel,
  type Ssh2Client,
} from './ssh';

export interface RemoteCommandOptions {
  /** The command is killed (on the server by `timeout`, and here) when it runs longer. */
  timeoutMs: number;
  /** Written to the command's stdin, then closed. The only way secrets (SQL, keys) reach a command. */
  stdin?: string | Buffer;
  /** Exit codes that count as success, or 'any' to inspect the code yourself. @default [0] */
  allowExitCodes?: readonly number[] | 'any';
  /** The activity's cancellation signal: closes the channel and rejects with the signal's reason. */
  signal?: AbortSignal;
  /** Called with every chunk of stdout as it arrives (progress, heartbeats). */
  onStdout?: (chunk: Buffer) => void;
  /** How to name the command in errors, instead of its (possibly long) command line. */
  describe?: string;
}

export interface RemoteCommandResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Prints the PID of the command (which `exec` makes the PID of `timeout`) so a cancelled command can be killed. */
const PID_ANNOUNCER = 'echo "sitefleet-pid $$" >&2 && exec "$@"';
const PID_LINE = /^sitefleet-pid (\d+)\n/;

function sudoPrefix(server: Server): string[] {
  return server.ssh.user === 'root' ? [] : ['sudo', '-n', '--'];
}

/**
 * The argument list actually run: `sudo -n` for non-root users, `timeout` so the server itself kills overruns,
 * and a PID announcement so that cancellation can kill the command's process group.
 */
function wrappedArgv(server: Server, argv: readonly string[], timeoutMs: number): string[] {
  const seconds = Math.max(1, Math.ceil(timeoutMs / 1000));
  return [
    ...sudoPrefix(server),
    'sh',
    '-c',
    PID_ANNOUNCER,
    'sitefleet',
    'timeout',
    '-k',
    String(KILL_GRACE_SECONDS),
    String(seconds),
    ...argv,
  ];
}

/** Best effort: signals the process group of a command whose channel we are abandoning. */
function killRemote(server: Server, client: Ssh2Client, pid: number, signalName: 'TERM' | 'KILL'): void {
  try {
    client.exec(quoteArgs([...sudoPrefix(server), 'kill', '-s', signalName, '--', `-${pid}`]), (err, ch) => {
      if (err) return;
      ch.on('error', () => undefined);
      ch.on('data', () => undefined);
      ch.stderr.on('data', () => undefined);
      ch.end();
    });
  } catch {
    // the connection is gone; so is the command's stdin, and `timeout` still bounds it
  }
}

function describeCommand(argv: readonly string[], describe: string | undefined): string {
  if (describe) return describe;
  const line = quoteArgs(argv);
  return line.length > 160 ? `${line.slice(0, 157)}...` : line;
}

function tail(text: string, max = 2000): string {
  const t = text.trim();
  return t.length > max ? `...${t.slice(-max)}` : t;
}

class ChannelOpenError extends Error {}

/** What sudo prints when it will not run a command for the ssh user (the command itself never ran). */
const SUDO_REFUSED =
  /^sudo: .*(password is required|not in the sudoers|not allowed to execute|a terminal is required)/m;

/**
 * Runs `argv` on `server` over its pooled connection and returns exit code and output.
 *
 * @throws RemoteCommandFailed (retryable) when the exit code is not allowed; RemoteCommandTimeout (retryable) when
 *   it overran; ConnectionLost (retryable) when the connection dropped; HostUnreachable, HostKeyMismatch or
 *   SshAuthenticationFailed from connecting; the signal's reason when cancelled.
 */
export async function runRemote(
  server: Server,
  argv: readonly string[],
  options: RemoteCommandOptions,
): Promise<RemoteCommandResult> {
  if (options.signal?.aborted) throw abortReason(options.signal);
  const command = quoteArgs(wrappedArgv(server, argv, options.timeoutMs));
  const what = describeCommand(argv, options.describe);
  await confirmedForThisActivity(server);
  let result: RemoteCommandResult | undefined;
  for (let attempt = 1; result === undefined; attempt++) {
    const pooled = await connection(server);
    try {
      result = await pooled.channels.run(() => execOnChannel(server, pooled.client, command, what, options));
    } catch (err) {
      // The command never started (the pooled connection had died): reconnect once, transparently.
      if (err instanceof ChannelOpenError && attempt === 1) {
        discard(server, pooled);
        continue;
      }
      if (err instanceof ChannelOpenError) {
        throw transientFailure(
          FailureType.ConnectionLost,
          `server ${server.name}: cannot open an ssh channel: ${err.message}`,
        );
      }
      throw err;
    }
  }
  if (server.ssh.user !== 'root' && result.code === 1 && SUDO_REFUSED.test(result.stderr)) {
    throw permanentFailure(
      FailureType.ServerNotReady,
      `server ${server.name}: ${server.ssh.user} may not run commands as root without a password (${tail(result.stderr, 300)}). ` +
        `Grant it: "${server.ssh.user} ALL=(root) NOPASSWD: ALL" in /etc/sudoers.d/sitefleet, or connect as root.`,
    );
  }
  const allowed = options.allowExitCodes ?? [0];
  if (allowed === 'any') return result;
  if (result.code === 124 && !allowed.includes(124)) {
    throw transientFailure(
      FailureType.RemoteCommandTimeout,
      `server ${server.name}: \`${what}\` did not finish within ${Math.ceil(options.timeoutMs / 1000)} s and was stopped`,
      { server: server.name },
    );
  }
  if (!allowed.includes(result.code)) {
    throw transientFailure(
      FailureType.RemoteCommandFailed,
      `server ${server.name}: \`${what}\` exited with ${result.code}: ${tail(result.stderr || result.stdout) || '(no output)'}`,
      { server: server.name, code: result.code, stderr: tail(result.stderr) },
    );
  }
  return result;
}

function execOnChannel(
  server: Server,
  client: Ssh2Client,
  command: string,
  what: string,
  options: RemoteCommandOptions,
): Promise<RemoteCommandResult> {
  return new Promise<RemoteCommandResult>((resolve, reject) => {
    const stdout: Buffer[] = [];
    const stderr: Buffer[] = [];
    let size = 0;
    let exitCode: number | null = null;
    let exitSignal: string | null = null;
    let settled = false;
    let channel: Ssh2Channel | undefined;

    const finish = (error: Error | undefined, value?: RemoteCommandResult): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      options.signal?.removeEventListener('abort', onAbort);
      if (error) reject(error);
      else resolve(value as RemoteCommandResult);
    };
    let remotePid: number | undefined;
    let announced = false;
    const stop = (signalName: 'TERM' | 'KILL'): void => {
      if (remotePid !== undefined) killRemote(server, client, remotePid, signalName);
      try {
        channel?.close();
      } catch {
        // idem
      }
    };
    const onAbort = (): void => {
      stop('TERM');
      finish(abortReason(options.signal as AbortSignal));
    };
    options.signal?.addEventListener('abort', onAbort, { once: true });
    const timer = setTimeout(
      () => {
        stop('KILL');
        finish(
          transientFailure(
            FailureType.RemoteCommandTimeout,
            `server ${server.name}: \`${what}\` did not finish within ${Math.ceil(options.timeoutMs / 1000)} s and was stopped`,
            { server: server.name },
          ),
        );
      },
      options.timeoutMs + (KILL_GRACE_SECONDS + 2) * 1000,
    );

    const collect = (into: Buffer[]) => (chunk: Buffer) => {
      size += chunk.length;
      if (size > MAX_OUTPUT_BYTES) {
        stop('KILL');
        finish(new Error(`server ${server.name}: \`${what}\` printed more than ${MAX_OUTPUT_BYTES} bytes`));
        return;
      }
      into.push(chunk);
    };

    try {
      client.exec(command, (err, ch) => {
        if (err) {
          finish(new ChannelOpenError(err.message));
          return;
        }
        channel = ch;
        if (settled) {
          stop('TERM');
          return;
        }
        ch.on('data', (chunk: Buffer) => {
          collect(stdout)(chunk);
          options.onStdout?.(chunk);
        });
        ch.stderr.on('data', (chunk: Buffer) => {
          if (announced) return collect(stderr)(chunk);
          // The first line of stderr is the wrapper's PID announcement; the command's own stderr follows it.
          const head = Buffer.concat([...stderr, chunk]);
          const match = PID_LINE.exec(head.toString('latin1'));
          if (match) {
            announced = true;
            remotePid = Number(match[1]);
            stderr.length = 0;
            const rest = head.subarray(match[0].length);
            if (rest.length > 0) collect(stderr)(rest);
          } else if (head.length > 64 || head.includes(10)) {
            announced = true;
            stderr.length = 0;
            collect(stderr)(head);
          } else {
            stderr.length = 0;
            stderr.push(head);
          }
        });
        ch.on('exit', (code: number | null, signalName?: string) => {
          exitCode = code;
          exitSignal = signalName ?? null;
        });
        ch.on('error', (e: Error) =>
          finish(transientFailure(FailureType.ConnectionLost, `server ${server.name}: ${e.message}`)),
        );
        ch.on('close', () => {
          if (exitCode === null && exitSignal === null) {
            finish(
              transientFailure(
                FailureType.ConnectionLost,
                `server ${server.name}: the ssh connection closed while \`${what}\` ran; it may or may not have finished`,
                { server: server.name },
              ),
            );
            return;
          }
          finish(undefined, {
            code: exitCode ?? 128 + 9,
            stdout: Buffer.concat(stdout).toString('utf8'),
            stderr: Buffer.concat(stderr).toString('utf8'),
          });
        });
        ch.end(options.stdin);
      });
    } catch (err) {
      // ssh2 throws synchronously when the connection is no longer writable.
      finish(new ChannelOpenError((err as Error).message));
    }
  });
}

/** One end of a pipe between two servers. */
export interface RemotePipeEnd {
  server: Server;
  argv: readonly string[];
}

export interface RemotePipeResult {
  /** Bytes that went from the first command's stdout to the second command's stdin. */
  bytes: number;
  from: { code: number; stderr: string };
  to: { code: number; stdout: string; stderr: string };
}

interface StartedCommand {
  channel: Ssh2Channel;
  pid: () => number | undefined;
  stderr: () => string;
  exited: Promise<number>;
}

function openChannel(client: Ssh2Client, command: string): Promise<Ssh2Channel> {
  return new Promise((resolve, reject) => {
    try {
      client.exec(command, (err, ch) => (err ? reject(new ChannelOpenError(err.message)) : resolve(ch)));
    } catch (err) {
      reject(new ChannelOpenError((err as Error).message));
    }
  });
}

/** Opens a channel for `argv` (reconnecting once if the pooled connection had died) and tracks stderr and exit. */
async function startCommand(
  server: Server,
  argv: readonly string[],
  timeoutMs: number,
): Promise<StartedCommand & { release: () => void }> {
  const command = quoteArgs(wrappedArgv(server, argv, timeoutMs));
  await confirmedForThisActivity(server);
  for (let attempt = 1; ; attempt++) {
    const pooled = await connection(server);
    const release = await pooled.channels.acquire();
    let channel: Ssh2Channel;
    try {
      channel = await openChannel(pooled.client, command);
    } catch (err) {
      release();
      if (err instanceof ChannelOpenError && attempt === 1) {
        discard(server, pooled);
        continue;
      }
      throw transientFailure(
        FailureType.ConnectionLost,
        `server ${server.name}: cannot open an ssh channel: ${(err as Error).message}`,
      );
    }
    let head = Buffer.alloc(0);
    let pid: number | undefined;
    let announced = false;
    const errors: Buffer[] = [];
    channel.stderr.on('data', (chunk: Buffer) => {
      if (announced) {
        errors.push(chunk);
        return;
      }
      head = Buffer.concat([head, chunk]);
      const match = PID_LINE.exec(head.toString('latin1'));
      if (match || head.length > 64 || head.includes(10)) {
        announced = true;
        if (match) pid = Number(match[1]);
        errors.push(match ? head.subarray(match[0].length) : head);
      }
    });
    let code: number | null = null;
    channel.on('exit', (c: number | null) => {
      code = c;
    });
    const exited = new Promise<number>((resolve, reject) => {
      channel.on('error', (e: Error) =>
        reject(transientFailure(FailureType.ConnectionLost, `server ${server.name}: ${e.message}`)),
      );
      channel.on('close', () => {
        release();
        if (code === null) {
          reject(
            transientFailure(
              FailureType.ConnectionLost,
              `server ${server.name}: the ssh connection closed while a command ran`,
            ),
          );
        } else resolve(code);
      });
    });
    exited.catch(() => undefined);
    return {
      channel,
      pid: () => pid,
      stderr: () => Buffer.concat(errors).toString('utf8'),
      exited,
      release,
    };
  }
}

/**
 * Streams the stdout of a command on one server into the stdin of a command on another (through this worker,
 * with back-pressure, never holding the data in memory): database dumps, backups. Both commands get the same
 * timeout and are killed on cancellation. Exit codes are returned, not judged: the receiving command should
 * write to a temp file that the caller commits only when both ends succeeded.
 */
export async function pipeRemote(
  from: RemotePipeEnd,
  to: RemotePipeEnd,
  options: { timeoutMs: number; signal?: AbortSignal; onProgress?: (bytes: number) => void },
): Promise<RemotePipeResult> {
  if (options.signal?.aborted) throw abortReason(options.signal);
  const receiver = await startCommand(to.server, to.argv, options.timeoutMs);
  let sender: Awaited<ReturnType<typeof startCommand>>;
  try {
    sender = await startCommand(from.server, from.argv, options.timeoutMs);
  } catch (err) {
    receiver.channel.close();
    throw err;
  }
  let bytes = 0;
  const stdout: Buffer[] = [];
  sender.channel.on('data', (chunk: Buffer) => {
    bytes += chunk.length;
    options.onProgress?.(bytes);
  });
  receiver.channel.on('data', (chunk: Buffer) => stdout.push(chunk));
  sender.channel.pipe(receiver.channel);
  const stopBoth = (): void => {
    for (const [end, started] of [
      [from, sender],
      [to, receiver],
    ] as const) {
      const pid = started.pid();
      if (pid !== undefined)
        void connection(end.server).then(
          (c) => killRemote(end.server, c.client, pid, 'TERM'),
          () => undefined,
        );
      started.channel.close();
    }
  };
  let onAbort: (() => void) | undefined;
  let timer: NodeJS.Timeout | undefined;
  const interrupted = new Promise<never>((_, reject) => {
    onAbort = () => {
      stopBoth();
      reject(abortReason(options.signal as AbortSignal));
    };
    options.signal?.addEventListener('abort', onAbort, { once: true });
    timer = setTimeout(
      () => {
        stopBoth();
        reject(
          transientFailure(
            FailureType.RemoteCommandTimeout,
            `piping ${from.server.name} to ${to.server.name} did not finish within ${Math.ceil(options.timeoutMs / 1000)} s`,
          ),
        );
      },
      options.timeoutMs + (KILL_GRACE_SECONDS + 2) * 1000,
    );
  });
  try {
    const [fromCode, toCode] = await Promise.race([Promise.all([sender.exited, receiver.exited]), interrupted]);
    return {
      bytes,
      from: { code: fromCode, stderr: sender.stderr() },
      to: { code: toCode, stdout: Buffer.concat(stdout).toString('utf8'), stderr: receiver.stderr() },
    };
  } finally {
    clearTimeout(timer);
    if (onAbort) options.signal?.removeEventListener('abort', onAbort);
  }
}
