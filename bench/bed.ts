/**
 * The benchmark's own test bed: a name and subnet no other bed on this machine uses (benchmarks take /24s from
 * 10.233.0.0/16, away from the CLI's 10.231.0.0/24 and the tests' 10.232.0.0/16), torn down on every way out.
 */
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { type Bed, BedConflictError, type HostOptions, startBed } from '../testbed';

const execFileAsync = promisify(execFile);
const BENCH_SUBNET_PREFIX = '10.233';

export interface BenchBedOptions {
  /** Web hosts (web-nginx), named w1..wN. */
  webHosts: number;
  /** Where the bed's host state lives (its filesystem type is recorded with the results). */
  baseDir: string;
}

/** Host names of the bench bed: web hosts first, then the database host. */
export const DB_HOST_NAME = 'db';
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
