/**
 * Runs the sitefleet worker in a child process (workers/child.ts, compiled) and samples its memory from
 * /proc/PID/status: VmRSS every 100 ms and VmHWM, the kernel's own resident peak.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { WORKER_ENV, WORKER_NODE_OPTIONS } from '../workers/node-options';
import type { ChildWorkerMessage as WorkerMessage, ChildWorkerRequest as ParentMessage } from '../workers/child';

const REPO_ROOT = path.resolve(__dirname, '..');
/** The worker as production runs it: compiled JavaScript (`npm run build`), no TypeScript loader in memory. */
const COMPILED_WORKER_SCRIPT = path.join(REPO_ROOT, 'dist', 'js', 'workers', 'child.js');
const TS_WORKER_SCRIPT = path.join(REPO_ROOT, 'workers', 'child.ts');
const SAMPLE_INTERVAL_MS = 100;
const READY_TIMEOUT_MS = 60_000;

export interface WorkerMemory {
  pid: number;
  /** VmHWM at the end: the highest resident set size the process ever had, in bytes. */
  peakRssBytes: number;
  /** The highest VmRSS seen by sampling, per bench section (e.g. a scenario), in bytes. */
  sectionPeaks: Record<string, number>;
  /** VmRSS right after the worker said it was ready, in bytes. */
  readyRssBytes: number;
  /** The worker's own `process.memoryUsage()` at the end of the bench (heap vs native memory), in bytes. */
  nodeAtEnd?: NodeJS.MemoryUsage;
  samples: number;
}

/** Compiles the project into dist/js (tsc, ~10 s), so that the worker runs as production runs it. */
async function buildCompiledWorker(): Promise<void> {
  await new Promise<void>((resolve, reject) => {
    const tsc = spawn(process.execPath, [require.resolve('typescript/bin/tsc'), '-p', 'tsconfig.build.json'], {
      cwd: REPO_ROOT,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let output = '';
    tsc.stdout.on('data', (c: Buffer) => (output += c.toString('utf8')));
    tsc.stderr.on('data', (c: Buffer) => (output += c.toString('utf8')));
    tsc.once('error', reject);
    tsc.once('exit', (code) =>
      code === 0 ? resolve() : reject(new Error(`npm run build (tsc) failed (${code}): ${output.slice(-2000)}`)),
    );
  });
}

async function readStatusKb(
  pid: number,
  field: 'VmRSS' | 'VmHWM' | 'RssAnon' | 'RssFile',
): Promise<number | undefined> {
  const status = await fs.readFile(`/proc/${pid}/status`, 'utf8').catch(() => '');
  const match = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(status);
  return match?.[1] !== undefined ? Number(match[1]) * 1024 : undefined;
}

export class BenchWorker {
  private section = 'start-up';
  private readonly sectionPeaks: Record<string, number> = {};
  private hwm = 0;
  private samples = 0;
  private readyRss = 0;
  private nodeAtEnd: NodeJS.MemoryUsage | undefined;
  private readonly timer: NodeJS.Timeout;
  private readonly exited: Promise<void>;
  private exitDescription: string | undefined;

  private constructor(
    private readonly child: ChildProcess,
    private readonly pid: number,
    private readonly stderrTail: () => string,
  ) {
    this.timer = setInterval(() => void this.sample(), SAMPLE_INTERVAL_MS);
    this.exited = new Promise((resolve) =>
      child.once('exit', (code, signal) => {
        this.exitDescription = `exited ${code ?? signal ?? '?'}`;
        resolve();
      }),
    );
  }

  /** Starts the worker and resolves once it polls the task queue; rejects with its error output otherwise. */
  static async start(options: {
    temporalAddress: string;
    namespace: string;
    taskQueue: string;
    bundlePath: string;
    /** Extra environment for the worker (e.g. SITEFLEET_SECRET_FILE). */
    env?: Record<string, string>;
    /**
     * `js`: the compiled worker (built here first with `npm run build`, as production runs it); `ts`: the sources
     * through the tsx loader (~45 MB more resident memory). @default 'js'
     */
    code?: 'js' | 'ts';
  }): Promise<BenchWorker> {
    const compiled = (options.code ?? 'js') === 'js';
    if (compiled) await buildCompiledWorker();
    // The worker runs with production's node options; BENCH_WORKER_NODE_ARGS (space-separated) replaces them.
    const override = process.env.BENCH_WORKER_NODE_ARGS;
    const nodeArgs = override !== undefined ? override.split(' ').filter(Boolean) : [...WORKER_NODE_OPTIONS];
    const argv = [
      ...nodeArgs,
      ...(compiled ? [COMPILED_WORKER_SCRIPT] : ['--import', 'tsx', TS_WORKER_SCRIPT]),
      '--address',
      options.temporalAddress,
      '--namespace',
      options.namespace,
      '--task-queue',
      options.taskQueue,
      '--bundle',
      options.bundlePath,
    ];
    const child = spawn(process.execPath, argv, {
      cwd: REPO_ROOT,
      env: {
        ...process.env,
        ...WORKER_ENV,
        ...options.env,
      },
      stdio: ['ignore', 'ignore', 'pipe', 'ipc'],
    });
    let stderr = '';
    child.stderr?.on('data', (chunk: Buffer) => {
      stderr = (stderr + chunk.toString('utf8')).slice(-4000);
    });
    const pid = child.pid;
    if (pid === undefined) throw new Error('could not start the bench worker process');
    const worker = new BenchWorker(child, pid, () => stderr);
    try {
      await new Promise<void>((resolve, reject) => {
        const timer = setTimeout(
          () => reject(new Error(`the worker did not become ready within ${READY_TIMEOUT_MS / 1000} s`)),
          READY_TIMEOUT_MS,
        );
        child.on('message', (message: WorkerMessage) => {
          if (message.type === 'ready') {
            clearTimeout(timer);
            resolve();
          } else if (message.type === 'error') {
            clearTimeout(timer);
            reject(new Error(message.message));
          }
        });
        child.once('exit', (code, signal) => {
          clearTimeout(timer);
          reject(
            new Error(`the worker process exited (${code ?? signal ?? '?'}) before it was ready: ${stderr.trim()}`),
          );
        });
      });
    } catch (error) {
      await worker.stop();
      throw error;
    }
    await worker.sample();
    worker.readyRss = (await readStatusKb(pid, 'VmRSS')) ?? 0;
    worker.section = 'idle';
    return worker;
  }

  /** Why the worker is not running, or undefined while it is. */
  get failure(): string | undefined {
    if (this.exitDescription === undefined) return undefined;
    return `the sitefleet worker ${this.exitDescription}: ${this.stderrTail().trim().slice(-1500)}`;
  }

  /** `work`, or a rejection as soon as the worker process exits (a workflow would otherwise wait for its timeout). */
  guard<T>(work: Promise<T>): Promise<T> {
    return Promise.race([
      work,
      this.exited.then(() => {
        throw new Error(this.failure ?? 'the sitefleet worker exited');
      }),
    ]);
  }

  /** Attributes the following samples to `name` (until the next call). */
  enterSection(name: string): void {
    this.section = name;
  }

  private async sample(): Promise<void> {
    const rss = await readStatusKb(this.pid, 'VmRSS');
    const hwm = await readStatusKb(this.pid, 'VmHWM');
    if (rss === undefined) return;
    if (process.env.BENCH_RSS_TRACE) {
      // Debugging aid: every sample with its section, and anonymous (heaps) vs file-backed (code) memory.
      const anon = await readStatusKb(this.pid, 'RssAnon');
      const file = await readStatusKb(this.pid, 'RssFile');
      await fs.appendFile(
        process.env.BENCH_RSS_TRACE,
        `${Date.now()} ${this.section} rss=${rss >> 20} anon=${(anon ?? 0) >> 20} file=${(file ?? 0) >> 20}\n`,
      );
    }
    this.samples++;
    this.sectionPeaks[this.section] = Math.max(this.sectionPeaks[this.section] ?? 0, rss);
    if (hwm !== undefined) this.hwm = Math.max(this.hwm, hwm);
  }

  memory(): WorkerMemory {
    return {
      pid: this.pid,
      peakRssBytes: Math.max(this.hwm, ...Object.values(this.sectionPeaks)),
      sectionPeaks: { ...this.sectionPeaks },
      readyRssBytes: this.readyRss,
      ...(this.nodeAtEnd ? { nodeAtEnd: this.nodeAtEnd } : {}),
      samples: this.samples,
    };
  }

  /** The worker's `process.memoryUsage()`, or undefined if it does not answer within 2 s. */
  private nodeMemory(): Promise<NodeJS.MemoryUsage | undefined> {
    if (this.exitDescription !== undefined || !this.child.connected) return Promise.resolve(undefined);
    return new Promise((resolve) => {
      const timer = setTimeout(() => finish(undefined), 2000);
      const onMessage = (message: WorkerMessage): void => {
        if (message.type === 'memory') finish(message.usage);
      };
      const finish = (usage: NodeJS.MemoryUsage | undefined): void => {
        clearTimeout(timer);
        this.child.off('message', onMessage);
        resolve(usage);
      };
      this.child.on('message', onMessage);
      const ask: ParentMessage = { type: 'memory' };
      this.child.send(ask);
    });
  }

  /** SIGTERM, then SIGKILL after 15 s. Takes a last memory sample (and the worker's own view) first. */
  async stop(): Promise<void> {
    await this.sample();
    this.nodeAtEnd ??= await this.nodeMemory();
    clearInterval(this.timer);
    if (this.exitDescription !== undefined) return;
    this.child.kill('SIGTERM');
    const killTimer = setTimeout(() => this.child.kill('SIGKILL'), 15_000);
    await this.exited;
    clearTimeout(killTimer);
  }
}
