import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { DefaultLogger } from '@temporalio/worker';
import { generateCodecKeyLine } from '../../codec/codec-keys';
import { sitefleetDataConverter } from '../../codec/data-converter';
import {
  buildSitefleetBundles,
  buildWorkflowBundle,
  loadWorkflowBundle,
  type BundleManifest,
  type WorkflowBundleFile,
} from '../../workers/bundle';

// Inside the project (test-artifacts/ is git-ignored) so that webpack resolves @temporalio/workflow from it.
const quiet = new DefaultLogger('WARN');
const scratch = resolve(__dirname, '..', '..', 'test-artifacts', `bundle-test-${randomUUID()}`);

void describe('prebuilt workflow bundles', () => {
  const outDir = join(scratch, 'dist');
  let files: WorkflowBundleFile[];
  before(async () => {
    mkdirSync(scratch, { recursive: true });
    files = await buildSitefleetBundles(outDir, quiet);
  });
  after(() => rmSync(scratch, { recursive: true, force: true }));

  void test('builds a plain and an encrypted-failure bundle of the sitefleet workflows, each with a manifest', () => {
    assert.deepEqual(
      files.map((f) => f.codePath),
      [join(outDir, 'workflow-bundle.js'), join(outDir, 'workflow-bundle.encrypted.js')],
    );
    const [plain, encrypted] = files.map((f) => JSON.parse(readFileSync(f.manifestPath, 'utf8')) as BundleManifest);
    assert.equal(plain!.failureConverterPath, null);
    assert.equal(encrypted!.failureConverterPath, 'codec/failure-converter.ts');
    assert.ok(plain!.sources['workflows/index.ts'], 'workflow sources are hashed');
    assert.ok(encrypted!.sources['codec/failure-converter.ts'], 'the failure converter is part of the bundle');
    assert.ok(!plain!.sources['codec/failure-converter.ts']);
    assert.ok(Object.keys(plain!.sources).every((p) => !p.includes('node_modules')));
    for (const file of files) assert.match(readFileSync(file.codePath, 'utf8'), /VerifyClusterNodes/);
  });

  void test('a worker gets the bundle built for its own data converter', () => {
    const encrypted = sitefleetDataConverter({ codecKey: generateCodecKeyLine('k') });
    assert.deepEqual(loadWorkflowBundle(undefined, { dir: outDir }), { codePath: join(outDir, 'workflow-bundle.js') });
    assert.deepEqual(loadWorkflowBundle(encrypted, { dir: outDir }), {
      codePath: join(outDir, 'workflow-bundle.encrypted.js'),
    });
    assert.equal(loadWorkflowBundle(undefined, { dir: join(scratch, 'nowhere') }), undefined, 'no bundle: undefined');
  });

  void test('a bundle whose sources changed, or built by another SDK version, is not used', async () => {
    const workflowsPath = join(scratch, 'workflows.ts');
    writeFileSync(workflowsPath, "export async function Greet(): Promise<string> {\n  return 'hello';\n}\n");
    const dir = join(scratch, 'stale');
    const built = await buildWorkflowBundle({ workflowsPath, outDir: dir, logger: quiet });
    assert.deepEqual(loadWorkflowBundle(undefined, { dir, workflowsPath, warn: assert.fail }), {
      codePath: built.codePath,
    });

    const warnings: string[] = [];
    const warn = (message: string) => warnings.push(message);
    writeFileSync(workflowsPath, "export async function Greet(): Promise<string> {\n  return 'hello again';\n}\n");
    assert.equal(loadWorkflowBundle(undefined, { dir, workflowsPath, warn }), undefined);
    assert.match(warnings[0] ?? '', /workflows\.ts changed since it was built.*npm run build:bundle/);

    await buildWorkflowBundle({ workflowsPath, outDir: dir, logger: quiet });
    const manifest = JSON.parse(readFileSync(built.manifestPath, 'utf8')) as BundleManifest;
    writeFileSync(built.manifestPath, JSON.stringify({ ...manifest, sdkVersion: '0.0.1' }));
    assert.equal(loadWorkflowBundle(undefined, { dir, workflowsPath, warn }), undefined);
    assert.match(warnings[1] ?? '', /built with @temporalio\/workflow 0\.0\.1/);
  });
});
