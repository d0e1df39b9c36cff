/**
 * The Temporal server of the stack without containers (stack.ts): its processes, its databases' schemas (created
 * and updated with the server's own sql tool) and its config file.
 */
import { spawnSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { runChecked } from './run-checked';
import { STACK_PORTS, STACK_ROOT, type StackState } from './stack-state';

/** The Temporal server processes: which services each runs. */
export const TEMPORAL_PROCESSES: { name: string; services: string[] }[] = [
  { name: 'temporal-frontend', services: ['frontend'] },
  { name: 'temporal-history-matching', services: ['history', 'matching'] },
  { name: 'temporal-worker', services: ['worker'] },
];

export async function setupTemporalSchema(
  s: StackState,
  sql: string,
  schemaDir: string,
  log: (l: string) => void,
): Promise<void> {
  const base = [
    '--plugin',
    'postgres12',
    '--ep',
    '127.0.0.1',
    '-p',
    String(s.basePort + STACK_PORTS.postgres),
    '-u',
    'temporal',
  ];
  const env = { ...process.env, SQL_PASSWORD: s.temporalDbPassword };
  for (const [db, sub] of [
    ['temporal', 'temporal'],
    ['temporal_visibility', 'visibility'],
  ] as const) {
    const args = [...base, '--db', db];
    const exists = spawnSync(sql, [...args, 'update-schema', '-d', join(schemaDir, sub, 'versioned')], {
      encoding: 'utf8',
      env,
    });
    if (exists.status === 0) {
      log(`temporal: schema of ${db} up to date`);
      continue;
    }
    log(`temporal: creating database ${db} and its schema`);
    runChecked(sql, [...args, 'create-database'], { env });
    runChecked(sql, [...args, 'setup-schema', '-v', '0.0'], { env });
    runChecked(sql, [...args, 'update-schema', '-d', join(schemaDir, sub, 'versioned')], { env });
  }
}

export function writeTemporalConfig(s: StackState): string {
  const p = (n: number) => s.basePort + n;
  const store = (db: string, maxConns: number) => ({
    sql: {
      pluginName: 'postgres12',
      databaseName: db,
      connectAddr: `127.0.0.1:${p(STACK_PORTS.postgres)}`,
      connectProtocol: 'tcp',
      user: 'temporal',
      password: s.temporalDbPassword,
      maxConns,
      maxIdleConns: maxConns,
      maxConnLifetime: '1h',
    },
  });
  const svc = (grpc: number, membership: number, http?: number) => ({
    rpc: {
      grpcPort: p(grpc),
      membershipPort: p(membership),
      bindOnLocalHost: true,
      ...(http ? { httpPort: p(http) } : {}),
    },
  });
  const config = {
    log: { stdout: true, level: 'warn' },
    persistence: {
      defaultStore: 'postgres-default',
      visibilityStore: 'postgres-visibility',
      numHistoryShards: 4,
      datastores: {
        'postgres-default': store('temporal', 20),
        'postgres-visibility': store('temporal_visibility', 10),
      },
    },
    global: { membership: { maxJoinDuration: '30s', broadcastAddress: '127.0.0.1' } },
    services: {
      frontend: svc(STACK_PORTS.frontend, STACK_PORTS.frontendMembership, STACK_PORTS.frontendHttp),
      history: svc(STACK_PORTS.history, STACK_PORTS.historyMembership),
      matching: svc(STACK_PORTS.matching, STACK_PORTS.matchingMembership),
      worker: svc(STACK_PORTS.temporalWorker, STACK_PORTS.temporalWorkerMembership),
    },
    clusterMetadata: {
      enableGlobalNamespace: false,
      failoverVersionIncrement: 10,
      masterClusterName: 'active',
      currentClusterName: 'active',
      clusterInformation: {
        active: {
          enabled: true,
          initialFailoverVersion: 1,
          rpcName: 'frontend',
          rpcAddress: `127.0.0.1:${p(STACK_PORTS.frontend)}`,
        },
      },
    },
    dcRedirectionPolicy: { policy: 'noop' },
    // The same dynamic config file docker-compose.yml mounts into the temporal service.
    dynamicConfigClient: {
      filepath: join(STACK_ROOT, 'deploy', 'temporal', 'dynamicconfig', 'sitefleet.yaml'),
      pollInterval: '10s',
    },
  };
  const dir = join(s.dir, 'temporal-config');
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'stack.yaml'), stringify(config), { mode: 0o600 });
  return dir;
}
