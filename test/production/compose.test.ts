import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { TestWorkflowEnvironment } from '@temporalio/testing';
import { parse } from 'yaml';
import { ensureTemporalCli } from '../../devserver/temporal-cli';
import { WORKER_ENV, WORKER_NODE_OPTIONS } from '../../workers/node-options';
import { ALL_SEARCH_ATTRIBUTES } from '../../domain/search-attributes';
import { assertNamespaceReady } from '../../devserver/namespace-setup';

const ROOT = resolve(__dirname, '..', '..');
const read = (path: string): string => readFileSync(join(ROOT, path), 'utf8');

interface Healthcheck {
  test: string[] | string;
}
interface Service {
  image?: string;
  build?: unknown;
  command?: string[];
  entrypoint?: string[];
  environment?: Record<string, string>;
  depends_on?: Record<string, { condition: string }>;
  ports?: string[];
  volumes?: string[];
  secrets?: { source: string; target: string }[];
  healthcheck?: Healthcheck;
  restart?: string;
}
interface Compose {
  name: string;
  services: Record<string, Service>;
  secrets: Record<string, { file: string }>;
  volumes: Record<string, unknown>;
}

const composeText = read('docker-compose.yml');
const compose = parse(composeText, { merge: true }) as Compose;
const services = compose.services;
const sitefleetServices = Object.entries(services).filter(([, s]) => s.build !== undefined);
const packageVersion = (JSON.parse(read('package.json')) as { version: string }).version;

/** `${VAR:-default}` → default, `${VAR:?msg}` → a placeholder, so values can be checked as docker compose sees them. */
function interpolate(value: string): string {
  return value.replace(/\$\{([A-Z_]+)(?::-([^}]*)|:\?[^}]*)?\}/g, (_m, _name: string, fallback?: string) =>
    fallback !== undefined ? fallback : 'x',
  );
}

void describe('docker-compose.yml', () => {
  void test('describes the whole stack', () => {
    assert.equal(compose.name, 'sitefleet');
    assert.deepEqual(Object.keys(services).sort(), [
      'api',
      'codec',
      'postgres',
      'temporal',
      'temporal-setup',
      'temporal-ui',
      'worker',
    ]);
    assert.deepEqual(sitefleetServices.map(([name]) => name).sort(), ['api', 'codec', 'temporal-setup', 'worker']);
    // The compiled code of `npm run build` (dist/js, built in the image), not TypeScript through the tsx loader.
    // The worker with production's node options (workers/node-options.ts: a heap limit that keeps garbage collected).
    assert.deepEqual(services.worker!.command, ['node', ...WORKER_NODE_OPTIONS, 'dist/js/workers/main.js']);
    assert.deepEqual(services.api!.command, ['node', 'dist/js/api/main.js']);
    assert.deepEqual(services.codec!.command, ['node', 'dist/js/codec/main.js', 'serve']);
    // The one-shot setup is the operator's own setup command (npm run setup -- --temporal ...), compiled.
    assert.deepEqual(services['temporal-setup']!.command!.slice(0, 4), [
      'node',
      'dist/js/devserver/setup-main.js',
      '--temporal',
      'temporal:7233',
    ]);
    for (const script of ['workers/main.ts', 'api/main.ts', 'codec/main.ts', 'devserver/setup-main.ts'])
      assert.ok(existsSync(join(ROOT, script)));
  });

  void test('pins every image to an exact version, never latest', () => {
    for (const [name, service] of Object.entries(services)) {
      const image = service.image ?? '';
      const [repo, tag] = image.split(':');
      assert.ok(repo && tag, `${name}: image "${image}" has a tag`);
      assert.notEqual(tag, 'latest', `${name}: not latest`);
      assert.match(tag!, /^\d+\.\d+(\.\d+)?([-.][\w.-]+)?$/, `${name}: "${tag}" is a version, not a moving tag`);
    }
    assert.equal(services.temporal!.image, 'temporalio/auto-setup:1.29.1');
    for (const [name, service] of sitefleetServices) {
      assert.equal(service.image, `sitefleet:${packageVersion}`, `${name} runs the image of this version`);
    }
  });

  void test('starts services in order: each waits for what it needs to be healthy or done', () => {
    const expect: Record<string, Record<string, string>> = {
      temporal: { postgres: 'service_healthy' },
      'temporal-setup': { temporal: 'service_healthy' },
      'temporal-ui': { temporal: 'service_healthy', codec: 'service_healthy' },
      worker: { 'temporal-setup': 'service_completed_successfully', postgres: 'service_healthy' },
      api: { 'temporal-setup': 'service_completed_successfully', postgres: 'service_healthy' },
    };
    for (const [name, deps] of Object.entries(expect)) {
      const actual = Object.fromEntries(
        Object.entries(services[name]!.depends_on ?? {}).map(([dep, { condition }]) => [dep, condition]),
      );
      assert.deepEqual(actual, deps, `${name} depends_on`);
    }
    for (const [name, service] of Object.entries(services)) {
      for (const [dep, { condition }] of Object.entries(service.depends_on ?? {})) {
        if (condition === 'service_healthy')
          assert.ok(services[dep]?.healthcheck, `${name} waits on ${dep}'s health check`);
        if (condition === 'service_completed_successfully')
          assert.equal(services[dep]?.restart, 'no', `${dep} runs once`);
      }
    }
  });

  void test('has a health check on every long-running service but the Web UI (which nothing waits for)', () => {
    for (const [name, service] of Object.entries(services)) {
      if (name === 'temporal-ui' || service.restart === 'no') continue;
      const check = service.healthcheck?.test;
      assert.ok(Array.isArray(check) && check[0] === 'CMD', `${name} has an exec health check`);
    }
    const probeUrl = (name: string) => /fetch\('([^']+)'\)/.exec(String(services[name]!.healthcheck!.test))?.[1];
    assert.equal(probeUrl('api'), 'http://127.0.0.1:8080/v1/health');
    assert.equal(probeUrl('codec'), 'http://127.0.0.1:8888/healthz');
    assert.equal(probeUrl('worker'), 'http://127.0.0.1:9464/metrics');
  });

  void test('publishes ports on loopback only, matching the ports the services are configured with', () => {
    const published = Object.fromEntries(
      Object.entries(services).map(([n, s]) => [n, (s.ports ?? []).map(interpolate)]),
    );
    for (const [name, ports] of Object.entries(published)) {
      for (const port of ports) assert.match(port, /^127\.0\.0\.1:\d+:\d+$/, `${name} publishes ${port} on loopback`);
    }
    assert.deepEqual(published['temporal-ui'], ['127.0.0.1:8233:8080']);
    assert.deepEqual(published.api, [`127.0.0.1:8080:${services.api!.environment!.SITEFLEET_API_PORT}`]);
    assert.deepEqual(published.codec, [`127.0.0.1:8888:${services.codec!.environment!.SITEFLEET_CODEC_PORT}`]);
    const workerEnv = services.worker!.environment!;
    assert.deepEqual(published.worker, [`127.0.0.1:9464:${workerEnv.SITEFLEET_METRICS_ADDRESS!.split(':')[1]}`]);
    assert.deepEqual(published.postgres, [], 'the database is reachable from the stack only');
    const ui = services['temporal-ui']!.environment!;
    assert.equal(interpolate(ui.TEMPORAL_CODEC_ENDPOINT!), 'http://localhost:8888', 'the UI points at the codec port');
    assert.equal(interpolate(services.codec!.environment!.SITEFLEET_CODEC_CORS_ORIGINS!), 'http://localhost:8233');
  });

  void test('sets only SITEFLEET_* and TEMPORAL_* variables that config/settings.ts knows', () => {
    const settings = read('config/settings.ts');
    const known = new Set(settings.match(/\b(?:SITEFLEET|TEMPORAL)_[A-Z0-9_]+\b/g) ?? []);
    const unknown: string[] = [];
    for (const [name, service] of sitefleetServices) {
      for (const key of Object.keys(service.environment ?? {})) {
        if (/^(SITEFLEET|TEMPORAL)_/.test(key) && !known.has(key)) unknown.push(`${name}: ${key}`);
      }
    }
    assert.deepEqual(unknown, [], `add these to config/settings.ts (or stop setting them): ${unknown.join(', ')}`);
    assert.match(
      interpolate(services.worker!.environment!.SITEFLEET_INVENTORY_URL!),
      /^postgres:\/\/sitefleet:x@postgres:5432\/sitefleet$/,
    );
  });

  void test('gives each service the secrets its settings point at, from files kept out of git', () => {
    for (const [name, service] of Object.entries(services)) {
      const mounted = new Set((service.secrets ?? []).map((s) => `/run/secrets/${s.target}`));
      for (const [key, value] of Object.entries(service.environment ?? {})) {
        if (value.startsWith('/run/secrets/')) assert.ok(mounted.has(value), `${name}: ${key}=${value} is mounted`);
      }
      for (const secret of service.secrets ?? [])
        assert.ok(compose.secrets[secret.source], `${name}: ${secret.source}`);
    }
    for (const name of ['worker', 'api', 'codec']) {
      assert.equal(services[name]!.environment!.SITEFLEET_CODEC_KEY_FILE, '/run/secrets/sitefleet-codec-keys');
    }
    for (const { file } of Object.values(compose.secrets)) {
      assert.match(interpolate(file), /^\.\/deploy\/secrets\//);
    }
    assert.match(read('deploy/secrets/.gitignore'), /^\*$/m);
    assert.match(read('.dockerignore'), /^deploy\/secrets$/m);
  });

  void test('mounts deploy files that exist, and documents every variable it reads in deploy/env.example', () => {
    for (const service of Object.values(services)) {
      for (const volume of service.volumes ?? []) {
        const source = interpolate(volume).split(':')[0]!;
        if (source.startsWith('./')) assert.ok(existsSync(join(ROOT, source)), `${source} exists`);
      }
    }
    const dynamic = parse(read('deploy/temporal/dynamicconfig/sitefleet.yaml')) as Record<string, { value: unknown }[]>;
    for (const [key, values] of Object.entries(dynamic)) {
      assert.ok(
        Array.isArray(values) && values.every((v) => 'value' in v),
        `dynamic config ${key} is a list of values`,
      );
    }
    assert.ok(services.temporal!.environment!.DYNAMIC_CONFIG_FILE_PATH!.endsWith('/sitefleet.yaml'));
    const example = read('deploy/env.example');
    const variables = new Set([...composeText.matchAll(/\$\{([A-Z_]+)/g)].map((m) => m[1]!));
    for (const variable of variables) assert.match(example, new RegExp(`^${variable}=`, 'm'), `${variable} documented`);
  });

  void test('is accepted by `docker compose config` (when Compose v2 is installed)', (t) => {
    // The docker CLI plugin, or the standalone v2 binary.
    const candidates: string[][] = [['docker', 'compose'], ['docker-compose']];
    const compose = candidates.find(([bin, ...sub]) => {
      const out = spawnSync(bin!, [...sub, 'version'], { encoding: 'utf8' });
      return out.status === 0 && !/version 1\./i.test(out.stdout);
    });
    if (!compose) {
      t.skip('Docker Compose v2 is not installed');
      return;
    }
    const [bin, ...sub] = compose;
    const result = spawnSync(bin!, [...sub, '--file', join(ROOT, 'docker-compose.yml'), 'config', '--quiet'], {
      encoding: 'utf8',
      env: { ...process.env, TEMPORAL_DB_PASSWORD: 'test', INVENTORY_DB_PASSWORD: 'test' },
    });
    assert.equal(result.status, 0, result.stderr);
  });
});

void describe('Dockerfile', () => {
  const dockerfile = read('Dockerfile');

  void test('builds on a pinned Debian Node 20 image, never Alpine (the core bridge needs glibc)', () => {
    const image = /^ARG NODE_IMAGE=(\S+)$/m.exec(dockerfile)?.[1];
    assert.match(image ?? '', /^node:20\.\d+\.\d+-bookworm-slim$/);
    const instructions = dockerfile.split('\n').filter((line) => !line.startsWith('#'));
    assert.doesNotMatch(instructions.join('\n'), /alpine/i);
    const froms = [...dockerfile.matchAll(/^FROM (\S+)/gm)].map((m) => m[1]);
    assert.ok(froms.length >= 2 && froms.every((f) => f === '${NODE_IMAGE}'), `every stage uses NODE_IMAGE: ${froms}`);
  });

  void test('installs ssh, rsync and zstd, runs the compiled code and its bundles as a non-root user', () => {
    const finalStage = dockerfile.slice(dockerfile.lastIndexOf('\nFROM '));
    const buildStage = dockerfile.slice(0, dockerfile.lastIndexOf('\nFROM '));
    assert.match(finalStage, /apt-get install[^\n]*openssh-client[^\n]*rsync[^\n]*zstd/);
    for (const [name, value] of Object.entries(WORKER_ENV)) {
      assert.match(finalStage, new RegExp(`^ENV (?:[^\\n]*\\\\\\n)*[^\\n]*\\b${name}=${value}\\b`, 'm'));
    }
    const cmd = JSON.stringify(['node', ...WORKER_NODE_OPTIONS, 'dist/js/workers/main.js']).replace(/","/g, '", "');
    assert.ok(finalStage.split('\n').includes(`CMD ${cmd}`), `the final stage runs ${cmd}`);
    assert.match(buildStage, /^RUN npm run build$/m);
    assert.equal(
      (JSON.parse(read('package.json')) as { scripts: Record<string, string> }).scripts.build,
      'tsc -p tsconfig.build.json && node dist/js/workers/bundle.js',
    );
    const instructions = dockerfile.split('\n').filter((line) => !line.startsWith('#'));
    assert.doesNotMatch(instructions.join('\n'), /tsx/, 'nothing in the image runs through the tsx loader');
    assert.match(dockerfile, /^RUN npm ci/m);
    const users = [...dockerfile.matchAll(/^USER (\S+)/gm)].map((m) => m[1]);
    assert.deepEqual(users, ['node']);
    for (const ignored of ['node_modules', 'dist', '.env', '.git']) {
      assert.match(read('.dockerignore'), new RegExp(`^${ignored.replace('.', '\\.')}$`, 'm'));
    }
  });
});

void describe('npm run setup -- --temporal (the temporal-setup service) against a real Temporal server', () => {
  let env: TestWorkflowEnvironment;
  let cli: string;
  const namespace = `sitefleet-setup-${randomUUID().slice(0, 8)}`;

  before(async () => {
    cli = await ensureTemporalCli();
    // A server without sitefleet's search attributes, as an operator's own cluster starts out.
    env = await TestWorkflowEnvironment.createLocal({
      server: { executable: { type: 'existing-path', path: cli }, ui: false, extraArgs: ['--log-level', 'error'] },
    });
  });
  after(async () => {
    await env?.teardown();
  });

  function runNode(script: string, args: string[], extraEnv: Record<string, string> = {}) {
    return spawnSync(process.execPath, ['--import', 'tsx', join(ROOT, script), ...args], {
      encoding: 'utf8',
      timeout: 120_000,
      cwd: ROOT,
      env: { ...process.env, ...extraEnv },
    });
  }
  const runSetup = () =>
    runNode('devserver/setup-main.ts', ['--temporal', env.address, '--namespace', namespace, '--retention-days', '7']);

  void test('the worker refuses a namespace without the search attributes and names the fix', () => {
    const worker = runNode('workers/main.ts', [], {
      TEMPORAL_ADDRESS: env.address,
      TEMPORAL_NAMESPACE: 'default',
      SITEFLEET_DATA_DIR: join(tmpdir(), `sitefleet-setup-test-${namespace}`),
    });
    assert.notEqual(worker.status, 0, 'the worker does not run');
    assert.match(
      worker.stderr,
      /lacks the search attribute\(s\) SitefleetSite \(KEYWORD\), .*SitefleetServer \(KEYWORD_LIST\)/,
    );
    assert.match(worker.stderr, new RegExp(`npm run setup -- --temporal ${env.address.replace('.', '\\.')}`));
    assert.doesNotMatch(worker.stdout, /polling task queue/);
  });

  void test('refuses a bad address before touching a server', () => {
    const bad = runNode('devserver/setup-main.ts', ['--temporal', 'host;rm -rf /:7233']);
    assert.notEqual(bad.status, 0);
    assert.match(bad.stderr, /--temporal "host;rm -rf \/:7233": must be host:port/);
  });

  void test("creates the namespace and registers exactly sitefleet's search attributes, and can run again", async () => {
    const first = runSetup();
    assert.equal(first.status, 0, first.stderr + first.stdout);
    assert.match(first.stdout, new RegExp(`creating namespace ${namespace}`));
    const again = runSetup();
    assert.equal(again.status, 0, again.stderr + again.stdout);
    assert.match(again.stdout, /namespace .* exists/);
    assert.doesNotMatch(again.stdout, /registering/);

    const { namespaceInfo, config } = await env.connection.workflowService.describeNamespace({ namespace });
    assert.equal(namespaceInfo?.name, namespace);
    assert.equal(Number(config?.workflowExecutionRetentionTtl?.seconds), 7 * 24 * 3600);
    const res = await env.connection.operatorService.listSearchAttributes({ namespace });
    const indexedType = { KEYWORD: 2, BOOL: 5, KEYWORD_LIST: 7 } as Record<string, number>; // IndexedValueType enum
    const expected = Object.fromEntries(ALL_SEARCH_ATTRIBUTES.map((k) => [k.name, indexedType[k.type]]));
    assert.deepEqual(Object.fromEntries(Object.entries(res.customAttributes ?? {})), expected);
    // The check the worker and npm start run now passes.
    await assertNamespaceReady(env.connection, env.address, namespace);
  });
});
