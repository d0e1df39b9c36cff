import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { join, relative, resolve } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { renderServerInclude } from '../../activities/render';
import { serverSchema } from '../../domain/model';
import { loadWorkflowBundle } from '../../workers/bundle';

// Production runs the code `npm run build` compiles (docker-compose.yml, Dockerfile). Compiled here once into a
// scratch directory inside the project (test-artifacts/ is git-ignored; webpack resolves node_modules from it), the
// same way: tsc with tsconfig.build.json, then the compiled workers/bundle.js. Everything compiled runs in plain
// `node` child processes, without the tsx loader this test runs under, so a stray require of a .ts file shows.
const ROOT = resolve(__dirname, '..', '..');
const scratch = join(ROOT, 'test-artifacts', `compiled-${randomUUID()}`);
const server = {
  name: 'web1',
  host: '10.0.0.11',
  ssh: { hostKey: `SHA256:${'A'.repeat(43)}` },
  http: { type: 'nginx' },
};

function run(args: string[], env: Record<string, string> = {}): string {
  const result = spawnSync(process.execPath, args, {
    cwd: ROOT,
    encoding: 'utf8',
    timeout: 120_000,
    env: { ...process.env, NODE_OPTIONS: '', ...env },
  });
  assert.equal(result.status, 0, `node ${args.join(' ')} failed:\n${result.stdout}${result.stderr}`);
  return result.stdout;
}

/** What the compiled code sees, asked through plain node: the bundles its worker would load and a template. */
const PROBE = `
const { join } = require('node:path');
const dir = process.env.COMPILED_DIR;
const bundle = require(join(dir, 'workers/bundle.js'));
const { sitefleetDataConverter } = require(join(dir, 'codec/data-converter.js'));
const { generateCodecKeyLine } = require(join(dir, 'codec/codec-keys.js'));
const { renderServerInclude } = require(join(dir, 'activities/render.js'));
const { serverSchema } = require(join(dir, 'domain/model.js'));
const warnings = [];
const logs = [];
const options = { warn: (m) => warnings.push(m), log: (m) => logs.push(m) };
const encrypted = sitefleetDataConverter({ codecKey: generateCodecKeyLine('k') });
console.log(JSON.stringify({
  projectRoot: bundle.PROJECT_ROOT,
  bundleDir: bundle.DEFAULT_BUNDLE_DIR,
  plain: bundle.loadWorkflowBundle(undefined, options) ?? null,
  encrypted: bundle.loadWorkflowBundle(encrypted, options) ?? null,
  plainWithEncryptedConverter:
    bundle.bundleProblem(join(dir, 'workflow-bundle.js'), encrypted, bundle.SITEFLEET_WORKFLOWS_PATH) ?? null,
  warnings,
  logs,
  serverInclude: renderServerInclude(serverSchema.parse(JSON.parse(process.env.SERVER))),
}));
`;

interface Probe {
  projectRoot: string;
  bundleDir: string;
  plain: { codePath: string } | null;
  encrypted: { codePath: string } | null;
  plainWithEncryptedConverter: string | null;
  warnings: string[];
  logs: string[];
  serverInclude: string;
}

void describe('the compiled code (npm run build), as production runs it', () => {
  let bundleOutput: string;
  let probe: Probe;

  before(() => {
    mkdirSync(scratch, { recursive: true });
    // --noCheck: the same JavaScript, without the type check (~9 s) that npm run typecheck does anyway.
    run([require.resolve('typescript/bin/tsc'), '-p', 'tsconfig.build.json', '--outDir', scratch, '--noCheck']);
    bundleOutput = run([join(scratch, 'workers', 'bundle.js')]);
    probe = JSON.parse(run(['-e', PROBE], { COMPILED_DIR: scratch, SERVER: JSON.stringify(server) })) as Probe;
  });
  after(() => rmSync(scratch, { recursive: true, force: true }));

  void test('bundle.js finds the project root above its build directory and writes the bundles next to its code', () => {
    assert.equal(probe.projectRoot, ROOT);
    assert.equal(probe.bundleDir, scratch);
    const shown = relative(ROOT, scratch);
    assert.match(bundleOutput, new RegExp(`^wrote ${shown}/workflow-bundle\\.js$`, 'm'));
    assert.match(bundleOutput, new RegExp(`^wrote ${shown}/workflow-bundle\\.encrypted\\.js$`, 'm'));
    const manifest = JSON.parse(readFileSync(join(scratch, 'workflow-bundle.encrypted.manifest.json'), 'utf8')) as {
      workflowsPath: string;
      failureConverterPath: string;
    };
    assert.equal(manifest.workflowsPath, `${shown}/workflows/index.js`, 'project-relative paths');
    assert.equal(manifest.failureConverterPath, `${shown}/codec/failure-converter.js`);
  });

  void test('the compiled worker takes the bundle built for its own data converter, and says so', () => {
    assert.deepEqual(probe.plain, { codePath: join(scratch, 'workflow-bundle.js') });
    assert.deepEqual(probe.encrypted, { codePath: join(scratch, 'workflow-bundle.encrypted.js') });
    assert.deepEqual(probe.warnings, []);
    assert.deepEqual(probe.logs, [
      `worker: using prebuilt workflow bundle ${relative(ROOT, join(scratch, 'workflow-bundle.js'))}`,
      `worker: using prebuilt workflow bundle ${relative(ROOT, join(scratch, 'workflow-bundle.encrypted.js'))}`,
    ]);
    assert.match(probe.plainWithEncryptedConverter ?? '', /built with failureConverterPath null/);
  });

  void test('a worker run from the sources never takes a bundle built from the compiled code', () => {
    const warnings: string[] = [];
    assert.equal(loadWorkflowBundle(undefined, { dir: scratch, warn: (m) => warnings.push(m) }), undefined);
    assert.match(
      warnings[0] ?? '',
      /it bundles test-artifacts\/compiled-[^/]+\/workflows\/index\.js, not workflows\/index\.ts/,
    );
  });

  void test('the compiled activities render from the project templates', () => {
    assert.equal(probe.serverInclude, renderServerInclude(serverSchema.parse(server)));
  });

  void test('compiles only code that the Docker build context holds', () => {
    const ignored = new Set(
      readFileSync(join(ROOT, '.dockerignore'), 'utf8')
        .split('\n')
        .map((line) => line.trim())
        .filter((line) => line && !line.startsWith('#')),
    );
    const compiledDirs = readdirSync(scratch).filter((name) => statSync(join(scratch, name)).isDirectory());
    const missing = compiledDirs.filter((name) => ignored.has(name) || !existsSync(join(ROOT, name)));
    assert.deepEqual(missing, [], `npm run build in the Dockerfile would not find these: ${missing.join(', ')}`);
  });
});
