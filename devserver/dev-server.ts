/**
 * The embedded Temporal dev server: SQLite file in the data directory (state survives restarts), Web UI, and
 * sitefleet's search attributes registered.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Connection } from '@temporalio/client';
import { ALL_SEARCH_ATTRIBUTES } from '../domain/search-attributes';
import type { Settings } from '../config/settings';

/** True when a Temporal frontend answers at the address. */
export async function temporalAnswers(address: string): Promise<boolean> {
  try {
    const conn = await Connection.connect({ address, connectTimeout: '1s' });
    try {
      await conn.workflowService.getSystemInfo({});
      return true;
    } finally {
      await conn.close();
    }
  } catch {
    return false;
  }
}

function searchAttributeArgs(): string[] {
  const type = { KEYWORD: 'Keyword', KEYWORD_LIST: 'KeywordList' } as Record<string, string>;
  return ALL_SEARCH_ATTRIBUTES.flatMap((key) => ['--search-attribute', `${key.name}=${type[key.type] ?? 'Keyword'}`]);
}

/** CPU seconds the process has used (Linux /proc), or undefined where that cannot be read. */
export function processCpuSeconds(pid: number): number | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Fields after the command name (which may hold spaces): utime and stime are fields 14 and 15.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(fields[11]) + Number(fields[12])) / 100;
  } catch {
    return undefined;
  }
}

export interface WaitOptions {
  /** Give up when the process has neither used CPU nor printed anything for this long. @default 120000 */
  stallMs?: number;
  /** How often to say what it is waiting for. @default 10000 */
  reportEveryMs?: number;
  log?: (line: string) => void;
}

/** The last bytes a child printed (stdout and stderr), for the error when it dies. */
class OutputTail {
  private text = '';
  lastAt = Date.now();
  constructor(private readonly max = 16_384) {}
  add(chunk: Buffer | string): void {
    this.text = (this.text + chunk.toString()).slice(-this.max);
    this.lastAt = Date.now();
  }
  toString(): string {
    return this.text.trimEnd();
  }
}

/**
 * Waits until a Temporal frontend answers at `address`, for as long as `child` lives and makes progress (uses CPU or
 * prints). A first start may take minutes on a slow machine (database creation, namespace and search attribute
 * registration); there is no fixed deadline. Fails with the child's own output when it exits, and with that output
 * and the stall time when it stops making progress.
 */
export async function waitForTemporal(
  what: string,
  child: ChildProcess,
  address: string,
  tail: { toString(): string; lastAt: number },
  opts: WaitOptions = {},
): Promise<void> {
  const stallMs = opts.stallMs ?? 120_000;
  const reportEveryMs = opts.reportEveryMs ?? 10_000;
  const log = opts.log ?? ((line: string) => console.log(line));
  const started = Date.now();
  let lastCpu = child.pid !== undefined ? processCpuSeconds(child.pid) : undefined;
  let lastProgress = Date.now();
  let lastReport = Date.now();
  const output = (): string => {
    const text = tail.toString();
    return text ? `\n--- ${what} output ---\n${text}\n---` : ` (${what} printed nothing)`;
  };
  for (;;) {
    if (child.exitCode !== null || child.signalCode !== null) {
      throw new Error(
        `${what} exited (${child.signalCode ?? `code ${child.exitCode}`}) before answering at ${address}${output()}`,
      );
    }
    if (await temporalAnswers(address)) return;
    const now = Date.now();
    const cpu = child.pid !== undefined ? processCpuSeconds(child.pid) : undefined;
    if (cpu === undefined || lastCpu === undefined || cpu > lastCpu || tail.lastAt > lastProgress) lastProgress = now;
    lastCpu = cpu;
    if (now - lastProgress > stallMs) {
      child.kill('SIGTERM');
      throw new Error(
        `${what} stopped making progress (no CPU use and no output for ${Math.round(stallMs / 1000)} s) and does not answer at ${address}${output()}`,
      );
    }
    if (now - lastReport >= reportEveryMs) {
      lastReport = now;
      log(
        `waiting for ${what} to answer at ${address} (${Math.round((now - started) / 1000)} s; process ${child.pid} alive` +
          `${cpu !== undefined ? `, ${cpu.toFixed(1)} s CPU so far` : ''})`,
      );
    }
    await new Promise((r) => setTimeout(r, 250));
  }
}

/** Starts `temporal server start-dev` and resolves once its frontend answers (see waitForTemporal). */
export async function startDevServer(cli: string, settings: Settings, opts: WaitOptions = {}): Promise<ChildProcess> {
  mkdirSync(settings.dataDir, { recursive: true });
  const [host, portText] = settings.temporalAddress.split(':');
  const args = [
    'server',
    'start-dev',
    '--db-filename',
    join(settings.dataDir, 'temporal.sqlite'),
    '--ip',
    host ?? '127.0.0.1',
    '--port',
    portText ?? '7233',
    '--ui-port',
    String(settings.uiPort),
    '--namespace',
    settings.namespace,
    '--log-level',
    'warn',
    ...searchAttributeArgs(),
  ];
  const log = opts.log ?? ((line: string) => console.log(line));
  log(`starting the Temporal dev server (${cli}); a first start can take a minute or more`);
  const child = spawn(cli, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  const tail = new OutputTail();
  child.stdout!.on('data', (chunk: Buffer) => {
    tail.add(chunk);
    process.stdout.write(chunk);
  });
  child.stderr!.on('data', (chunk: Buffer) => {
    tail.add(chunk);
    process.stderr.write(chunk);
  });
  await new Promise<void>((resolve, reject) => {
    child.once('spawn', resolve);
    child.once('error', reject);
  });
  try {
    await waitForTemporal('temporal server start-dev', child, settings.temporalAddress, tail, { ...opts, log });
  } catch (err) {
    if (child.exitCode === null) child.kill('SIGTERM');
    throw err;
  }
  return child;
}
