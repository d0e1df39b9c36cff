/**
 * The benchmark's own test bed: a name and subnet no other bed on this machine uses (benchmarks take /24s from
 * 10.233.0.0/16, away from the CLI's 10.231.0.0/24 and the tests' 10.232.0.0/16), torn down on every way out.
 */
import { execFile } from 'node:child_process';
import { promises as fs } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { promisify } from 'node:util';
import {
  type Bed,
  BedConflictError,
  bedPaths,
  downBed,
  type HostOptions,
  processExists,
  readState,
  startBed,
} from '../testbed';

const execFileAsync = promisify(execFile);
const BENCH_SUBNET_PREFIX = '10.233';

export interface BenchBedOptions {
  /** Web hosts (web-nginx), named w1..wN. */
  webHosts: number;
  /** One haproxy host (`lb`) for the rolling scenario. */
  loadBalancer?: boolean;
  /** Where the bed's host state lives (its filesystem type is recorded with the results). */
  baseDir: string;
}

/**
 * Where the bench keeps host state: $SITEFLEET_TESTBED_DIR if set, else tmpfs (/dev/shm/sitefleet-bench) where
 * /dev/shm is one — the reference timings were taken on tmpfs, and a disk shared with other work makes the numbers
 * measure that disk — else the bed's usual directory under the system's temp dir.
 */
export async function defaultBenchBaseDir(): Promise<string> {
  const fromEnv = process.env.SITEFLEET_TESTBED_DIR;
  if (fromEnv) return fromEnv;
  const shm = await execFileAsync('stat', ['-f', '-c', '%T', '/dev/shm']).then(
    (r) => r.stdout.trim(),
    () => '',
  );
  return shm === 'tmpfs' ? '/dev/shm/sitefleet-bench' : path.join(os.tmpdir(), 'sitefleet-testbed');
}

/** Tears down beds under `baseDir` whose owning process has died (a bench or test killed with SIGKILL). */
export async function reclaimStaleBeds(baseDir: string, log: (line: string) => void): Promise<void> {
  for (const name of await fs.readdir(baseDir).catch(() => [] as string[])) {
    if (!/^[a-z][a-z0-9]{0,7}$/.test(name)) continue;
    const state = await readState(bedPaths(name, baseDir)).catch(() => undefined);
    if (state?.plan.ephemeral && state.ownerPid !== undefined && !processExists(state.ownerPid)) {
      log(`removing bed ${name}, left behind by process ${state.ownerPid}`);
      await downBed(name, baseDir).catch((error: Error) => log(`could not remove stale bed ${name}: ${error.message}`));
    }
  }
}

/** Host names of the bench bed: web hosts first, then the database host. */
export const DB_HOST_NAME = 'db';
export const LB_HOST_NAME = 'lb';
export const webHostName = (index: number): string => `w${index}`;

async function routedSubnets(): Promise<string> {
  const { stdout } = await execFileAsync('ip', ['-4', 'route', 'show', 'table', 'all']);
  return stdout;
}

/**
 * Starts the bench bed: `webHosts` nginx + php-fpm hosts and one MariaDB host. Retries on another name and subnet
 * when another bed takes them between the check and the claim.
 */
export async function startBenchBed(options: BenchBedOptions): Promise<Bed> {
  const hosts: HostOptions[] = [
    ...Array.from(
      { length: options.webHosts },
      (_, i): HostOptions => ({
        name: webHostName(i + 1),
        roles: ['web-nginx'],
      }),
    ),
    { name: DB_HOST_NAME, roles: ['db'] },
    ...(options.loadBalancer ? [{ name: LB_HOST_NAME, roles: ['lb'] } satisfies HostOptions] : []),
  ];
  const first = (process.pid * 11) % 256;
  for (let attempt = 0; attempt < 32; attempt++) {
    const subnet = `${BENCH_SUBNET_PREFIX}.${(first + attempt) % 256}.0/24`;
    if ((await routedSubnets()).includes(subnet.replace('/24', '/'))) continue;
    const name = `b${process.pid.toString(36)}${attempt.toString(36)}`.slice(0, 8);
    try {
      return await startBed({ hosts, name, subnet, baseDir: options.baseDir, ephemeral: true });
    } catch (error) {
      if (error instanceof BedConflictError) continue;
      throw error;
    }
  }
  throw new Error(`no free bench bed name and subnet in ${BENCH_SUBNET_PREFIX}.0.0/16 after 32 attempts`);
}
