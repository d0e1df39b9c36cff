/**
 * The bed's runtime record on the controller (state.json): its plan, who owns it, and each host's
 * PIDs. Written before anything is created so that `down` can undo a bring-up that stopped halfway.
 */
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import type { BedPaths, BedPlan } from './plan';

export interface HostRuntime {
  /** The host's PID-namespace init, as seen from the root PID namespace; absent while the host is stopped. */
  initPid?: number;
  launcherPid?: number;
  /** A VM host's QEMU process. */
  qemuPid?: number;
  /** A VM host's last boot: QEMU start to sshd answering, in ms, and how many tries it took (1 or 2). */
  bootMs?: number;
  bootAttempts?: number;
}

export interface BedState {
  version: 1;
  phase: 'starting' | 'up' | 'failed';
  plan: BedPlan;
  /** For ephemeral beds: the process that started the bed; once it is gone, anyone may tear the bed down. */
  ownerPid?: number;
  startedAt: string;
  hosts: Record<string, HostRuntime>;
}

/** The one atomic file writer of the test bed: write a temporary file, then rename it over the target. */
export async function writeFileAtomic(file: string, content: string, mode = 0o644): Promise<void> {
  const tmp = path.join(path.dirname(file), `.${path.basename(file)}.${process.pid}.${Date.now()}.tmp`);
  await fs.writeFile(tmp, content, { mode });
  await fs.chmod(tmp, mode);
  await fs.rename(tmp, file);
}

export async function writeState(paths: BedPaths, state: BedState): Promise<void> {
  await writeFileAtomic(paths.stateFile, `${JSON.stringify(state, null, 2)}\n`);
}

export async function readState(paths: BedPaths): Promise<BedState | undefined> {
  try {
    return JSON.parse(await fs.readFile(paths.stateFile, 'utf8')) as BedState;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new Error(`cannot read bed state ${paths.stateFile}: ${(error as Error).message}`);
  }
}

/**
 * Applies `change` to the state on disk. Updates are serialized within this process; across
 * processes the last writer wins, which is fine for the per-host PID records it holds.
 */
let queue: Promise<unknown> = Promise.resolve();
export function updateState(paths: BedPaths, change: (state: BedState) => void): Promise<BedState> {
  const next = queue.then(async () => {
    const state = await readState(paths);
    if (!state) throw new Error(`bed state ${paths.stateFile} is gone; was the bed torn down?`);
    change(state);
    await writeState(paths, state);
    return state;
  });
  queue = next.catch(() => undefined);
  return next;
}

export async function recordHostRuntime(paths: BedPaths, hostName: string, runtime: HostRuntime): Promise<void> {
  await updateState(paths, (state) => {
    state.hosts[hostName] = runtime;
  });
}

/** Whether a process with this PID exists (it may not be ours: only use this for owner records). */
export function processExists(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}
