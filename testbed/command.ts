/**
 * The one process runner of the test bed: every command is an argument array, never a shell string.
 */
import { spawn } from 'node:child_process';
import { closeSync, openSync, readFileSync, rmSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

export interface CommandOptions {
  /** Written to the command's stdin, which is then closed. */
  input?: string | Buffer;
  /** The complete environment of the command. @default a minimal root environment ({@link baseEnv}) */
  env?: NodeJS.ProcessEnv;
  /** Kill the command (SIGKILL) after this long. @default 60000 */
  timeoutMs?: number;
  /** Throw a {@link CommandError} when the command exits non-zero. @default true */
  check?: boolean;
  cwd?: string;
  /**
   * Send stdout and stderr to a temporary file instead of pipes, for commands that start daemons:
   * a daemon that inherits a pipe keeps it open long after the command exits. The result's
   * `stdout` then holds both streams. @default false
   */
  outputToFile?: boolean;
}

export interface CommandResult {
  argv: readonly string[];
  /** Exit code, or null when a signal ended the command. */
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

export class CommandError extends Error {
  constructor(
    readonly result: CommandResult,
    context?: string,
  ) {
    const how = result.code !== null ? `exited ${result.code}` : `was killed by ${result.signal ?? 'a signal'}`;
    const detail = (result.stderr.trim() || result.stdout.trim()).slice(-2000);
    super(`${context ? `${context}: ` : ''}\`${result.argv.join(' ')}\` ${how}${detail ? `: ${detail}` : ''}`);
    this.name = 'CommandError';
  }
}

/** The environment commands get unless the caller passes one: no proxy settings, no inherited secrets. */
export function baseEnv(extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  return {
    PATH: '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin',
    HOME: '/root',
    USER: 'root',
    LOGNAME: 'root',
    SHELL: '/bin/bash',
    LANG: 'C.UTF-8',
    TERM: 'dumb',
    ...extra,
  };
}

let outputFileCounter = 0;

/**
 * Runs `argv` and collects its output. With pipes, the result waits for the command's output to
 * end, but at most a second after the command itself exited (in case a daemon it started holds
 * the pipes; use `outputToFile` for such commands).
 */
export function runCommand(argv: readonly string[], options: CommandOptions = {}): Promise<CommandResult> {
  const [file, ...args] = argv;
  if (file === undefined) throw new Error('runCommand: empty argv');
  const timeoutMs = options.timeoutMs ?? 60_000;
  const outputFile = options.outputToFile
    ? path.join(os.tmpdir(), `sitefleet-testbed-${process.pid}-${outputFileCounter++}.out`)
    : undefined;
  const outputFd = outputFile !== undefined ? openSync(outputFile, 'w+', 0o600) : undefined;
  return new Promise((resolve, reject) => {
    const child = spawn(file, args, {
      env: options.env ?? baseEnv(),
      cwd: options.cwd ?? '/',
      stdio: ['pipe', outputFd ?? 'pipe', outputFd ?? 'pipe'],
    });
    if (outputFd !== undefined) closeSync(outputFd);
    const stdout: Buffer[] = [];
    const stderr: Buffer[] = [];
    child.stdout?.on('data', (chunk: Buffer) => stdout.push(chunk));
    child.stderr?.on('data', (chunk: Buffer) => stderr.push(chunk));
    child.stdin?.on('error', () => {
      /* the command need not read its input */
    });
    child.stdin?.end(options.input ?? '');

    let settled = false;
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    const finish = (code: number | null, signal: NodeJS.Signals | null): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      child.stdout?.destroy();
      child.stderr?.destroy();
      let fileOutput = '';
      if (outputFile !== undefined) {
        fileOutput = readFileSync(outputFile, 'utf8');
        rmSync(outputFile, { force: true });
      }
      const result: CommandResult = {
        argv,
        code,
        signal,
        stdout: fileOutput + Buffer.concat(stdout).toString('utf8'),
        stderr: Buffer.concat(stderr).toString('utf8'),
      };
      if ((options.check ?? true) && code !== 0) reject(new CommandError(result));
      else resolve(result);
    };
    child.on('error', (error) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      if (outputFile !== undefined) rmSync(outputFile, { force: true });
      reject(new Error(`could not run \`${argv.join(' ')}\`: ${error.message}`));
    });
    child.on('close', finish);
    child.on('exit', (code, signal) => {
      if (outputFile !== undefined) finish(code, signal);
      else setTimeout(() => finish(code, signal), 1000).unref();
    });
  });
}
