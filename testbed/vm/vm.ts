/**
 * One VM test host: its disk (a sparse ext4 image per host, filled with `mkfs.ext4 -d`, no loop
 * mount), its tap device on the bed's bridge, and its QEMU process (TCG, microvm, virtio-mmio).
 * The guest runs this machine's own Debian userland (shared read-only over 9p, see
 * initramfs-init.sh) with its own /etc, /var and disk, like a namespace host with a real kernel.
 */
import { spawn } from 'node:child_process';
import { closeSync, promises as fs, openSync } from 'node:fs';
import * as path from 'node:path';
import { baseEnv, runCommand } from '../command';
import { isPidAlive } from './pids';
import type { BedPlan, HostPlan } from '../plan';
import { ensureVmAssets } from './assets';

/** Guest RAM in MiB: the scenario's WordPress reads fit; 384 cost 370-470 MB per QEMU process. */
export const VM_MEMORY_MB = 512;
const DISK_SIZE = '2G';
const GUEST_INIT = path.join(__dirname, 'guest-init.sh');

export function diskOf(host: HostPlan): string {
  return path.join(host.dir, 'disk.img');
}

export function serialLogOf(bed: BedPlan, host: HostPlan): string {
  return path.join(bed.paths.logsDir, `${host.name}.console.log`);
}

/** The guest's disk: / with the overlay upper dirs and the host's /var/aegir, /var/www, /var/log, /root. */
export async function buildDisk(host: HostPlan): Promise<void> {
  const staging = path.join(host.dir, 'disk.staging');
  await fs.rm(staging, { recursive: true, force: true });
  await fs.mkdir(staging);
  for (const d of ['usr', 'etc', 'var', 'proc', 'sys', 'dev', 'run', 'tmp', '.host', 'mnt', 'srv', 'home', 'opt']) {
    await fs.mkdir(path.join(staging, d));
  }
  await fs.chmod(path.join(staging, 'tmp'), 0o1777);
  for (const d of ['usr', 'etc', 'var']) {
    await fs.mkdir(path.join(staging, '.ov', d, 'upper'), { recursive: true });
    await fs.mkdir(path.join(staging, '.ov', d, 'work'), { recursive: true });
  }
  for (const link of ['bin', 'sbin', 'lib', 'lib64']) await fs.symlink(`usr/${link}`, path.join(staging, link));
  await fs.mkdir(path.join(staging, '.data'));
  // /root and the bind-mount sources keep their owners and modes (cp -a), and then live on the disk.
  await runCommand(['cp', '-a', path.join(host.dir, 'root'), path.join(staging, 'root')]);
  for (const d of ['aegir', 'www', 'log']) {
    await runCommand(['cp', '-a', path.join(host.dir, d), path.join(staging, '.data', d)]);
  }
  await fs.copyFile(GUEST_INIT, path.join(host.dir, 'guest-init.sh'));
  await fs.rm(diskOf(host), { force: true });
  await runCommand([
    'mkfs.ext4',
    '-q',
    '-F',
    '-L',
    host.name,
    '-E',
    'root_owner=0:0',
    '-d',
    staging,
    diskOf(host),
    DISK_SIZE,
  ]);
  await fs.rm(staging, { recursive: true, force: true });
}

let tscKhz: number | undefined;
/** The host's TSC frequency: the guest skips calibrating its clock (which froze microvm on a busy host). */
async function hostTscKhz(): Promise<number | undefined> {
  if (tscKhz !== undefined) return tscKhz;
  const { stdout } = await runCommand(['dmesg'], { check: false });
  const mhz = /tsc: (?:Refined TSC clocksource calibration|Detected) ([\d.]+) MHz/.exec(stdout)?.[1];
  if (mhz) tscKhz = Math.round(Number(mhz) * 1000);
  else {
    const cpuinfo = await fs.readFile('/proc/cpuinfo', 'utf8');
    const cpuMhz = /^cpu MHz\s*:\s*([\d.]+)/m.exec(cpuinfo)?.[1];
    if (cpuMhz) tscKhz = Math.round(Number(cpuMhz) * 1000);
  }
  return tscKhz;
}

function macOf(bed: BedPlan, host: HostPlan): string {
  const octets = host.ip.split('.').map(Number);
  return `52:54:${[octets[0], octets[1], octets[2], octets[3]].map((o) => (o ?? 0).toString(16).padStart(2, '0')).join(':')}`;
}

export interface VmProcess {
  qemuPid: number;
}

/** Starts QEMU for the host (its disk must exist); returns once the process runs. */
export async function startQemu(bed: BedPlan, host: HostPlan): Promise<VmProcess> {
  const assets = await ensureVmAssets();
  const khz = await hostTscKhz();
  const append = [
    'console=ttyS0', 'quiet', 'panic=-1', 'tsc=reliable', ...(khz ? [`tsc_early_khz=${khz}`] : []),
    'no_timer_check', 'random.trust_cpu=on', 'mitigations=off',
    `sf.hostdir=${host.dir}`, `sf.layer=${assets.nfsdLayer}`, `sf.name=${host.name}`,
    `sf.ip=${host.ip}/${bed.prefixLength}`,
  ].join(' '); // prettier-ignore
  const argv = [
    '-name', `sitefleet-${bed.name}-${host.name}`,
    '-machine', 'microvm,rtc=on', '-accel', 'tcg,thread=multi,tb-size=256', '-cpu', 'max', '-smp', '1',
    '-m', String(VM_MEMORY_MB), '-nodefaults', '-no-user-config', '-display', 'none', '-no-reboot',
    '-kernel', assets.kernel, '-initrd', assets.initramfs, '-append', append,
    '-serial', 'stdio',
    '-drive', `id=root,file=${diskOf(host)},format=raw,if=none,cache=writeback`,
    '-device', 'virtio-blk-device,drive=root',
    '-fsdev', 'local,id=hostroot,path=/,security_model=none,readonly=on,multidevs=remap',
    '-device', 'virtio-9p-device,fsdev=hostroot,mount_tag=hostroot',
    '-netdev', `tap,id=net0,ifname=${host.veth},script=no,downscript=no`,
    '-device', `virtio-net-device,netdev=net0,mac=${macOf(bed, host)}`,
    '-device', 'virtio-rng-device',
  ]; // prettier-ignore
  const log = openSync(serialLogOf(bed, host), 'a');
  const child = spawn('qemu-system-x86_64', argv, {
    detached: true,
    stdio: ['ignore', log, log],
    env: baseEnv(),
    cwd: '/',
  });
  closeSync(log);
  const pid = child.pid;
  child.unref();
  if (pid === undefined)
    throw new Error(`host ${host.name}: qemu-system-x86_64 did not start (is qemu-system-x86 installed?)`);
  return { qemuPid: pid };
}

/** Whether `pid` is this host's QEMU (its command line names the host's disk): guards against PID reuse. */
export async function isQemuOf(pid: number | undefined, host: HostPlan): Promise<boolean> {
  if (pid === undefined || !isPidAlive(pid)) return false;
  const cmdline = await fs.readFile(`/proc/${pid}/cmdline`, 'utf8').catch(() => '');
  return cmdline.split('\0').includes(`id=root,file=${diskOf(host)},format=raw,if=none,cache=writeback`);
}
