/**
 * What the stack without containers (stack.ts) keeps about itself: its ports (`basePort + n` on 127.0.0.1), its
 * addresses, and its state file `<dir>/stack.json` (passwords, pids, ports).
 */
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';

/** The repository: devserver/ from source, dist/js/devserver/ compiled. */
export const STACK_ROOT = existsSync(join(__dirname, '..', 'package.json'))
  ? resolve(__dirname, '..')
  : resolve(__dirname, '..', '..', '..');

/** Offsets from basePort. */
export const STACK_PORTS = {
  postgres: 0,
  frontend: 1,
  frontendHttp: 2,
  frontendMembership: 3,
  history: 4,
  historyMembership: 5,
  matching: 6,
  matchingMembership: 7,
  temporalWorker: 8,
  temporalWorkerMembership: 9,
  api: 10,
  codec: 11,
  worker1Metrics: 12,
  worker2Metrics: 13,
} as const;

export interface StackState {
  dir: string;
  basePort: number;
  namespace: string;
  taskQueue: string;
  temporalDbPassword: string;
  inventoryDbPassword: string;
  postgresAdminPassword: string;
  /** name → pid of every process `up` started (PostgreSQL is stopped with pg_ctl). */
  pids: Record<string, number>;
  workers: number;
}

export interface StackAddresses {
  temporal: string;
  api: string;
  codec: string;
  postgres: string;
  inventoryUrl: string;
  temporalDbUrl: string;
  workerMetrics: string[];
}

export function stackAddresses(s: StackState): StackAddresses {
  const p = (n: number) => s.basePort + n;
  return {
    temporal: `127.0.0.1:${p(STACK_PORTS.frontend)}`,
    api: `http://127.0.0.1:${p(STACK_PORTS.api)}`,
    codec: `http://127.0.0.1:${p(STACK_PORTS.codec)}`,
    postgres: `127.0.0.1:${p(STACK_PORTS.postgres)}`,
    inventoryUrl: `postgres://sitefleet:${s.inventoryDbPassword}@127.0.0.1:${p(STACK_PORTS.postgres)}/sitefleet`,
    temporalDbUrl: `postgres://temporal:${s.temporalDbPassword}@127.0.0.1:${p(STACK_PORTS.postgres)}/temporal`,
    workerMetrics: Array.from({ length: s.workers }, (_, i) => `127.0.0.1:${p(STACK_PORTS.worker1Metrics) + i}`),
  };
}

const stateFile = (dir: string) => join(dir, 'stack.json');

export function readStackState(dir: string): StackState | undefined {
  return existsSync(stateFile(dir)) ? (JSON.parse(readFileSync(stateFile(dir), 'utf8')) as StackState) : undefined;
}
export function saveStackState(s: StackState): void {
  writeFileSync(stateFile(s.dir), JSON.stringify(s, null, 2), { mode: 0o600 });
}
