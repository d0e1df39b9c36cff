/**
 * The one runner of processes on this worker (rsync, OpenSSH, tar, git, zstd): an argument list, never a shell
 * string. Output is collected (stdout also line by line, or left to the caller as a stream); a `signal` stops the
 * process with SIGTERM and the result then rejects with the signal's reason.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, openSync } from 'node:fs';
import type { Readable } from 'node:stream';
import { abortReason } from '../support/activity-context';

export interface LocalProcessOptions {
  /** What the process reads: bytes (stdin is closed after them) or a stream piped in. @default nothing */
  stdin?: Buffer | string | Readable;
  /** Stops the process (SIGTERM); the result rejects with the signal's reason once it has exited. */
  signal?: AbortSignal;
  /** `collect` into the result (default), or `stream`: the caller reads the handle's `stdout`. */
  stdout?: 'collect' | 'stream';
  /** How collected stdout becomes a string: 'latin1' keeps every byte as one character. @default 'utf8' */
  stdoutEncoding?: BufferEncoding;
  /** Called with each complete line of stdout as it arrives. */
  onStdoutLine?: (line: string) => void;
  /**
   * stderr goes to this file (mode 0600) and stdout nowhere: for a process that leaves a daemon behind, which would
   * otherwise hold the pipes open.
   */
  stderrFile?: string;
}

export interface LocalProcessResult {
  /** Exit code, or null when a signal ended the process. */
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

export interface LocalProcess {
  child: ChildProcess;
  /** The process's stdout, with `stdout: 'stream'`. */
  stdout: Readable;
  result: Promise<LocalProcessResult>;
}

/** How long the result waits for the output pipes to close after the process exited (a daemon may hold them). */
const PIPE_GRACE_MS = 1_000;

/** Starts `argv[0]` with the arguments `argv[1..]`. */
export function startLocal(argv: readonly string[], options: LocalProcessOptions = {}): LocalProcess {
  const [file, ...args] = argv;
  if (file === undefined) throw new Error('startLocal: empty argument list');
  const { signal, stdin, stderrFile } = options;
  const errFd = stderrFile ? openSync(stderrFile, 'w', 0o600) : undefined;
  const child = spawn(file, args, {
    stdio: [stdin === undefined ? 'ignore' : 'pipe', errFd === undefined ? 'pipe' : 'ignore', errFd ?? 'pipe'],
  });
  if (errFd !== undefined) closeSync(errFd);
  const stdout = child.stdout as Readable;
  const result = new Promise<LocalProcessResult>((resolve, reject) => {
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    let partial = '';
    if (options.stdout !== 'stream') {
      child.stdout?.on('data', (chunk: Buffer) => {
        out.push(chunk);
        if (!options.onStdoutLine) return;
        const lines = (partial + chunk.toString('utf8')).split('\n');
        partial = lines.pop() ?? '';
        for (const line of lines) options.onStdoutLine(line);
      });
    }
    child.stderr?.on('data', (chunk: Buffer) => err.push(chunk));
    if (child.stdin) {
      // The process need not read all its input; a stream piped in stops when the process has gone.
      child.stdin.on('error', () => {
        if (stdin !== undefined && typeof stdin !== 'string' && !Buffer.isBuffer(stdin)) stdin.destroy();
      });
      if (typeof stdin === 'string' || Buffer.isBuffer(stdin)) child.stdin.end(stdin);
      else stdin?.pipe(child.stdin);
    }
    const onAbort = (): void => {
      child.kill('SIGTERM');
    };
    signal?.addEventListener('abort', onAbort, { once: true });
    if (signal?.aborted) onAbort();
    let settled = false;
    const finish = (code: number | null, exitSignal: NodeJS.Signals | null): void => {
      if (settled) return;
      settled = true;
      signal?.removeEventListener('abort', onAbort);
      if (signal?.aborted) {
        reject(abortReason(signal));
        return;
      }
      resolve({
        code,
        signal: exitSignal,
        stdout: Buffer.concat(out).toString(options.stdoutEncoding ?? 'utf8'),
        stderr: Buffer.concat(err).toString('utf8'),
      });
    };
    child.on('error', (e) => {
      if (settled) return;
      settled = true;
      signal?.removeEventListener('abort', onAbort);
      reject(signal?.aborted ? abortReason(signal) : e);
    });
    child.on('close', finish);
    child.on('exit', (code, exitSignal) => {
      setTimeout(() => finish(code, exitSignal), PIPE_GRACE_MS).unref();
    });
  });
  return { child, stdout, result };
}

/** Runs `argv` to its end and returns its exit and collected output (a non-zero exit is not an error here). */
export function runLocal(argv: readonly string[], options: LocalProcessOptions = {}): Promise<LocalProcessResult> {
  return startLocal(argv, options).result;
}
