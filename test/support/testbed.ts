/**
 * Test beds for node:test files. Each bed gets a name and subnet no other bed on this machine
 * uses (derived from the PID, checked against `ip route` and other beds' claims), and is always
 * torn down: in `after()`, on SIGINT/SIGTERM/SIGHUP, and, if the process exits any other way,
 * by a detached `testbed down`. Beds left by a killed test process are reclaimed on the next start.
 *
 *   const bed = useTestBed({ hosts: [{ roles: ['web-nginx'] }, { roles: ['db'] }] });
 *   test('…', async () => { await bed().exec('h1', ['true']); });
 */
import { execFile, spawn } from 'node:child_process';
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { after, before } from 'node:test';
import { promisify } from 'node:util';
import {
  type Bed,
  BedConflictError,
  bedPaths,
  defaultBaseDir,
  downBed,
  processExists,
  readState,
  startBed,
  type StartBedOptions,
} from '../../testbed';

export type TestBedOptions = Omit<StartBedOptions, 'name' | 'subnet' | 'ephemeral'>;

const execFileAsync = promisify(execFile);
const REPO_ROOT = path.resolve(__dirname, '..', '..');
/** Test beds take /24s from this /16, away from the CLI's default 10.231.0.0/24. */
const TEST_SUBNET_PREFIX = '10.232';

const liveBeds = new Map<string, { bed: Bed; baseDir: string }>();
let counter = 0;
let subnetOffset = 0;
let handlersInstalled = false;
let staleSwept = false;

/** Tears down beds whose owning test process has died (e.g. killed with SIGKILL). */
export async function reclaimStaleBeds(baseDir: string): Promise<void> {
  const entries = await fs.readdir(baseDir).catch(() => [] as string[]);
  for (const name of entries) {
    if (!/^[a-z][a-z0-9]{0,7}$/.test(name)) continue;
    const state = await readState(bedPaths(name, baseDir)).catch(() => undefined);
    if (state?.plan.ephemeral && state.ownerPid !== undefined && !processExists(state.ownerPid)) {
      await downBed(name, baseDir).catch((error: Error) =>
        console.error(`could not reclaim stale bed ${name}: ${error.message}`),
      );
    }
  }
}

function downInBackground(name: string, baseDir: string): void {
  const cli = path.join(REPO_ROOT, 'testbed', 'cli.ts');
  spawn(process.execPath, ['--import', 'tsx', cli, '--name', name, '--dir', baseDir, 'down'], {
    cwd: REPO_ROOT,
    detached: true,
    stdio: 'ignore',
  }).unref();
}

function installCleanupHandlers(): void {
  if (handlersInstalled) return;
  handlersInstalled = true;
  const signals: [NodeJS.Signals, number][] = [
    ['SIGINT', 130],
    ['SIGTERM', 143],
    ['SIGHUP', 129],
  ];
  for (const [signal, code] of signals) {
    process.once(signal, () => {
      const downs = [...liveBeds.values()].map(({ bed }) => bed.down().then(() => liveBeds.delete(bed.name)));
      void Promise.allSettled(downs).finally(() => process.exit(code));
    });
  }
  // Whatever else ends the process (an uncaught error, process.exit): a detached `down` finishes the job.
  process.on('exit', () => {
    for (const [name, { baseDir }] of liveBeds) downInBackground(name, baseDir);
  });
}

/**
 * A bed name and subnet for this process that no bed uses right now (not claimed: `startBed`
 * claims them). Each call gives a new name; subnets come from 10.232.0.0/16, starting at a
 * PID-derived /24 and skipping routed ones.
 */
export async function nextBedNameAndSubnet(): Promise<{ name: string; subnet: string }> {
  const routes = (await runRoutes()).join('\n');
  const first = (process.pid * 7) % 256;
  for (let i = 0; i < 256; i++) {
    const subnet = `${TEST_SUBNET_PREFIX}.${(first + subnetOffset++) % 256}.0/24`;
    if (routes.includes(subnet.replace('/24', '/'))) continue;
    return { name: `t${process.pid.toString(36)}${(counter++).toString(36)}`.slice(0, 8), subnet };
  }
  throw new Error(`no free test subnet in ${TEST_SUBNET_PREFIX}.0.0/16`);
}

async function runRoutes(): Promise<string[]> {
  const { stdout } = await execFileAsync('ip', ['-4', 'route', 'show', 'table', 'all']);
  return stdout.split('\n');
}

/** Starts a bed for this test process on a free name and subnet; tear it down with `stopTestBed`. */
export async function startTestBed(options: TestBedOptions): Promise<Bed> {
  const baseDir = options.baseDir ?? defaultBaseDir();
  installCleanupHandlers();
  if (!staleSwept) {
    staleSwept = true;
    await reclaimStaleBeds(baseDir);
  }
  for (let attempt = 0; attempt < 20; attempt++) {
    const { name, subnet } = await nextBedNameAndSubnet();
    try {
      const bed = await startBed({ ...options, baseDir, name, subnet, ephemeral: true });
      liveBeds.set(bed.name, { bed, baseDir });
      return bed;
    } catch (error) {
      // Another process took the name or subnet between our check and our claim: try the next.
      if (error instanceof BedConflictError) continue;
      throw error;
    }
  }
  throw new Error('could not find a free bed name and subnet after 20 attempts');
}

export async function stopTestBed(bed: Bed): Promise<void> {
  try {
    await bed.down();
  } finally {
    liveBeds.delete(bed.name);
  }
}

/**
 * Registers `before`/`after` hooks around the current suite (or file) and returns an accessor
 * for the bed, valid inside tests.
 */
export function useTestBed(options: TestBedOptions): () => Bed {
  let bed: Bed | undefined;
  before(async () => {
    bed = await startTestBed(options);
  });
  after(async () => {
    if (bed) await stopTestBed(bed);
  });
  return () => {
    if (!bed) throw new Error('the test bed is not up: use it inside a test, after before() ran');
    return bed;
  };
}
