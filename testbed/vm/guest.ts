/**
 * Running a VM host: boot (QEMU, then sshd answering, with a timeout and one retry: microvm can
 * stall before /init on a busy machine), commands over ssh with the host's pinned key, a clean
 * reboot (the guest's init ends, QEMU exits because of -no-reboot, a new QEMU boots the same disk),
 * and power-off (SIGKILL to QEMU).
 */
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { quoteArgs } from '../../activities/transport/shell-quote';
import { CommandError, type CommandResult, runCommand } from '../command';
import type { HostExecOptions } from '../host';
import { controllerPathOf } from '../host';
import { knownHostsLine } from '../keys';
import { assertRouteViaBridge, waitForTcpPort } from '../network';
import type { BedPlan, HostPlan } from '../plan';
import { isPidAlive } from './pids';
import { isQemuOf, serialLogOf, startQemu } from './vm';

/** From QEMU's start to sshd answering. Measured 10-18 s at load 1, 2-3x that at load 3; then one retry. */
export const VM_BOOT_TIMEOUT_MS = Number(process.env['SITEFLEET_VM_BOOT_TIMEOUT_MS'] ?? 150_000);

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

function knownHostsOf(host: HostPlan): string {
  return path.join(host.dir, 'known_hosts');
}

/** Pins the host's own ed25519 key (written by prepareHostFiles) for the bed's ssh to it. */
async function ensureKnownHosts(host: HostPlan): Promise<string> {
  const file = knownHostsOf(host);
  const key = await fs.readFile(controllerPathOf(host, '/etc/ssh/ssh_host_ed25519_key.pub'), 'utf8');
  await fs.writeFile(file, `${knownHostsLine(host.ip, key)}\n`, { mode: 0o644 });
  return file;
}

function sshArgs(bed: BedPlan, host: HostPlan, knownHosts: string): string[] {
  return [
    '-F', '/dev/null', '-i', bed.paths.clientKey, '-o', 'IdentitiesOnly=yes',
    '-o', `UserKnownHostsFile=${knownHosts}`, '-o', 'GlobalKnownHostsFile=/dev/null',
    '-o', 'StrictHostKeyChecking=yes', '-o', 'BatchMode=yes', '-o', 'ConnectTimeout=10',
    '-o', 'ServerAliveInterval=15', '-o', 'LogLevel=ERROR', '-p', '22', `root@${host.ip}`,
  ]; // prettier-ignore
}

/**
 * Runs argv on the VM host as `user`, over ssh as root with the bed's key and the host's pinned key.
 * Environment values go over stdin (read by a tiny sh prelude), never on the command line.
 */
export async function execInVm(
  bed: BedPlan,
  host: HostPlan,
  argv: readonly string[],
  options: HostExecOptions = {},
): Promise<CommandResult> {
  const user = options.user ?? 'root';
  const home = user === 'root' ? '/root' : user === 'aegir' ? '/var/aegir' : '/';
  const env: Record<string, string> = { HOME: home, USER: user, LOGNAME: user, ...options.env };
  for (const [k, v] of Object.entries(env)) {
    if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(k) || /[\n\0]/.test(v)) {
      throw new Error(`host ${host.name}: environment variable ${k} cannot be passed (name or newline in value)`);
    }
  }
  const inner = user === 'root' ? [...argv] : ['runuser', '-u', user, '--', ...argv];
  const prelude = 'while IFS= read -r l && [ -n "$l" ]; do export "$l"; done; exec "$@"';
  const remote = quoteArgs(['sh', '-c', prelude, 'sh', ...inner]);
  const envLines = `${Object.entries(env)
    .map(([k, v]) => `${k}=${v}`)
    .join('\n')}\n\n`;
  const input = Buffer.concat([Buffer.from(envLines), Buffer.from(options.input ?? '')]);
  const knownHosts = await fs.access(knownHostsOf(host)).then(
    () => knownHostsOf(host),
    () => ensureKnownHosts(host),
  );
  const { user: _user, env: _env, ...rest } = options;
  void _user;
  void _env;
  try {
    const result = await runCommand(['ssh', ...sshArgs(bed, host, knownHosts), remote], { ...rest, input });
    return { ...result, argv: [...argv] };
  } catch (error) {
    if (error instanceof CommandError) {
      throw new CommandError({ ...error.result, argv: [...argv] }, `on VM host ${host.name}`);
    }
    throw error;
  }
}

async function waitForExit(pid: number, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (!isPidAlive(pid)) return true;
    await sleep(50);
  }
  return !isPidAlive(pid);
}

/** Powers the guest off: SIGKILL to its QEMU (after checking the PID is that host's QEMU). */
export async function killVm(host: HostPlan, qemuPid: number | undefined): Promise<void> {
  if (qemuPid === undefined || !(await isQemuOf(qemuPid, host))) return;
  process.kill(qemuPid, 'SIGKILL');
  if (!(await waitForExit(qemuPid, 10_000))) throw new Error(`host ${host.name}: QEMU ${qemuPid} survived SIGKILL`);
}

/**
 * Boots the guest and waits for its sshd; a guest that does not answer in time is killed and
 * booted once more. `onStart` records the QEMU PID as soon as it exists (so `down` finds it).
 */
export async function bootVm(
  bed: BedPlan,
  host: HostPlan,
  onStart: (qemuPid: number) => Promise<void>,
): Promise<{ qemuPid: number; attempts: number; bootMs: number }> {
  await assertRouteViaBridge(host.ip, bed.bridge);
  await ensureKnownHosts(host);
  let lastError: Error | undefined;
  for (let attempt = 1; attempt <= 2; attempt++) {
    const started = performance.now();
    const { qemuPid } = await startQemu(bed, host);
    await onStart(qemuPid);
    let waiting = true;
    try {
      await Promise.race([
        waitForTcpPort(host.ip, 22, { timeoutMs: VM_BOOT_TIMEOUT_MS }),
        (async () => {
          while (waiting && isPidAlive(qemuPid)) await sleep(200);
          if (waiting) throw new Error('QEMU exited');
        })(),
      ]);
      waiting = false;
      return { qemuPid, attempts: attempt, bootMs: Math.round(performance.now() - started) };
    } catch (error) {
      waiting = false;
      lastError = error as Error;
      await killVm(host, qemuPid);
    }
  }
  const tail = (await fs.readFile(serialLogOf(bed, host), 'utf8').catch(() => '')).slice(-1500);
  throw new Error(
    `VM host ${host.name} did not boot twice (${lastError?.message}); console ${serialLogOf(bed, host)}:\n${tail}`,
  );
}

/** A clean shutdown: the guest's init ends its daemons, unmounts its shares, syncs and resets; QEMU exits. */
export async function shutdownVm(bed: BedPlan, host: HostPlan, qemuPid: number): Promise<void> {
  // The guest's init ends every process, this ssh session too: its exit status says nothing.
  await execInVm(bed, host, ['kill', '-TERM', '1'], { timeoutMs: 15_000, check: false });
  if (!(await waitForExit(qemuPid, 60_000))) {
    await killVm(host, qemuPid);
    throw new Error(`host ${host.name}: the guest did not shut down within 60 s (QEMU killed)`);
  }
}

/** QEMU processes of a bed, found by their disk path: for `down` when the state file lost a PID. */
export async function findBedQemuPids(hostsDir: string): Promise<number[]> {
  const pids: number[] = [];
  for (const entry of await fs.readdir('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const cmdline = await fs.readFile(`/proc/${entry}/cmdline`, 'utf8').catch(() => '');
    const args = cmdline.split('\0');
    if (!args[0]?.endsWith('qemu-system-x86_64')) continue;
    if (args.some((a) => a.startsWith(`id=root,file=${hostsDir}/`))) pids.push(Number(entry));
  }
  return pids;
}

export { isQemuOf };
