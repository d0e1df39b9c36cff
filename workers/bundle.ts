/**
 * The prebuilt workflow bundle: production workers load it instead of running webpack at start.
 *
 * The bundles sit next to the code they were built from, so the sources (tsx) and the compiled code never use or
 * overwrite each other's:
 * - `npm run build` (tsc, then node dist/js/workers/bundle.js; what the Docker image runs) writes them to dist/js/;
 * - `npm run build:bundle` (tsx workers/bundle.ts) writes them to dist/.
 * For each data converter a worker may run with:
 * - workflow-bundle.js            plain failures (no key configured)
 * - workflow-bundle.encrypted.js  failures encoded for the payload codec (codec/failure-converter)
 * and next to each a manifest with the SDK version, the project-relative workflows and converter paths and a hash
 * of every project file webpack read. A failure converter runs inside the workflow sandbox, so it is part of the
 * bundle: a worker must load the bundle built for its own data converter.
 *
 * `loadWorkflowBundle(dataConverter)` returns `{ codePath }` only when a matching bundle exists and none of its
 * sources changed since it was built; otherwise undefined, and the worker bundles at start (~1 s): a stale bundle
 * is never run.
 */
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, renameSync, statSync, writeFileSync } from 'node:fs';
import { dirname, isAbsolute, join, relative, resolve, sep } from 'node:path';
import type { DataConverter } from '@temporalio/common';
import { bundleWorkflowCode, type BundleOptions, type Logger } from '@temporalio/worker';
import { ENCRYPTED_FAILURE_CONVERTER_PATH } from '../codec/data-converter';
import { SITEFLEET_WORKFLOW_INTERCEPTOR_MODULES, sitefleetWebpackConfig } from './bundler-options';

type WebpackConfig = Parameters<NonNullable<BundleOptions['webpackConfigHook']>>[0];
type WebpackPlugin = NonNullable<WebpackConfig['plugins']>[number];

/** The nearest directory at or above `start` with sitefleet's package.json: the same from source and from dist/js. */
export function findProjectRoot(start: string): string {
  for (let dir = start; ; dir = dirname(dir)) {
    const pkg = join(dir, 'package.json');
    if (existsSync(pkg) && (JSON.parse(readFileSync(pkg, 'utf8')) as { name?: unknown }).name === 'sitefleet')
      return dir;
    if (dirname(dir) === dir) throw new Error(`bundle: no package.json named "sitefleet" at or above ${start}`);
  }
}

export const PROJECT_ROOT = findProjectRoot(__dirname);
/** The directory holding workers/: the project root from source, the tsc output directory (dist/js) compiled. */
const CODE_ROOT = resolve(__dirname, '..');
const COMPILED = CODE_ROOT !== PROJECT_ROOT;
const BUILD_COMMAND = COMPILED ? 'npm run build' : 'npm run build:bundle';

/** @default <project>/dist from source, the compiled code's directory (dist/js) when compiled */
export const DEFAULT_BUNDLE_DIR = COMPILED ? CODE_ROOT : join(PROJECT_ROOT, 'dist');
/** The sitefleet workflows. */
export const SITEFLEET_WORKFLOWS_PATH = require.resolve('../workflows');

export interface BundleManifest {
  format: 1;
  builtAt: string;
  sdkVersion: string;
  workflowsPath: string;
  failureConverterPath: string | null;
  payloadConverterPath: string | null;
  /** Project-relative path → sha256 of every project file webpack read. */
  sources: Record<string, string>;
}

export interface WorkflowBundleFile {
  codePath: string;
  manifestPath: string;
}

type ConverterPaths = Pick<DataConverter, 'failureConverterPath' | 'payloadConverterPath'> | undefined;

function projectPath(path: string | undefined): string | null {
  return path ? relative(PROJECT_ROOT, path).split(sep).join('/') : null;
}

function sha256(path: string): string {
  return createHash('sha256').update(readFileSync(path)).digest('hex');
}

function sdkVersion(): string {
  const pkg = JSON.parse(readFileSync(require.resolve('@temporalio/workflow/package.json'), 'utf8')) as {
    version: string;
  };
  return pkg.version;
}

/** The bundle file name for a data converter: `workflow-bundle[.variant].js`. */
export function bundleFileName(converter: ConverterPaths): string {
  const failure = converter?.failureConverterPath;
  const payload = converter?.payloadConverterPath;
  if (!failure && !payload) return 'workflow-bundle.js';
  if (failure === ENCRYPTED_FAILURE_CONVERTER_PATH && !payload) return 'workflow-bundle.encrypted.js';
  const id = createHash('sha256')
    .update(`${projectPath(failure)}|${projectPath(payload)}`)
    .digest('hex')
    .slice(0, 10);
  return `workflow-bundle.${id}.js`;
}

function manifestPathOf(codePath: string): string {
  return codePath.replace(/\.js$/, '.manifest.json');
}

function writeAtomically(path: string, content: string): void {
  const temp = `${path}.${process.pid}.tmp`;
  writeFileSync(temp, content);
  renameSync(temp, path);
}

/** Runs webpack once and records which project files went into the bundle. */
export async function buildWorkflowBundle(options: {
  /** @default the sitefleet workflows */
  workflowsPath?: string;
  converter?: ConverterPaths;
  /** @default DEFAULT_BUNDLE_DIR */
  outDir?: string;
  /** Receives webpack's summary. @default the SDK's default logger (INFO) */
  logger?: Logger;
}): Promise<WorkflowBundleFile> {
  const workflowsPath = options.workflowsPath ?? SITEFLEET_WORKFLOWS_PATH;
  const outDir = options.outDir ?? DEFAULT_BUNDLE_DIR;
  const inputs = new Set<string>();
  const recordInputs: WebpackPlugin = {
    apply(compiler) {
      compiler.hooks.done.tap('sitefleet-bundle-inputs', (stats) => {
        for (const file of stats.compilation.fileDependencies) inputs.add(file);
      });
    },
  };
  const { code } = await bundleWorkflowCode({
    workflowsPath,
    workflowInterceptorModules: SITEFLEET_WORKFLOW_INTERCEPTOR_MODULES,
    failureConverterPath: options.converter?.failureConverterPath,
    payloadConverterPath: options.converter?.payloadConverterPath,
    webpackConfigHook: sitefleetWebpackConfig((config) => ({
      ...config,
      plugins: [...(config.plugins ?? []), recordInputs],
    })),
    logger: options.logger,
  });
  const sources: Record<string, string> = {};
  for (const file of [...inputs].sort()) {
    const rel = relative(PROJECT_ROOT, file);
    if (!isAbsolute(file) || rel.startsWith('..') || rel.split(sep).includes('node_modules')) continue;
    if (!statSync(file, { throwIfNoEntry: false })?.isFile()) continue; // directories, the in-memory entrypoint
    sources[rel.split(sep).join('/')] = sha256(file);
  }
  if (Object.keys(sources).length === 0) throw new Error('bundle: webpack reported no project source files');
  const manifest: BundleManifest = {
    format: 1,
    builtAt: new Date().toISOString(),
    sdkVersion: sdkVersion(),
    workflowsPath: projectPath(workflowsPath)!,
    failureConverterPath: projectPath(options.converter?.failureConverterPath),
    payloadConverterPath: projectPath(options.converter?.payloadConverterPath),
    sources,
  };
  mkdirSync(outDir, { recursive: true });
  const codePath = join(outDir, bundleFileName(options.converter));
  writeAtomically(codePath, code);
  writeAtomically(manifestPathOf(codePath), JSON.stringify(manifest, null, 2) + '\n');
  return { codePath, manifestPath: manifestPathOf(codePath) };
}

/** Both bundles a sitefleet worker may need: plain, and with the encrypted-payload failure converter. */
export async function buildSitefleetBundles(
  outDir = DEFAULT_BUNDLE_DIR,
  logger?: Logger,
): Promise<WorkflowBundleFile[]> {
  return [
    await buildWorkflowBundle({ outDir, logger }),
    await buildWorkflowBundle({
      outDir,
      logger,
      converter: { failureConverterPath: ENCRYPTED_FAILURE_CONVERTER_PATH },
    }),
  ];
}

/** Why the bundle at `codePath` cannot be used with this converter, or undefined when it can. */
export function bundleProblem(codePath: string, converter: ConverterPaths, workflowsPath: string): string | undefined {
  const manifestPath = manifestPathOf(codePath);
  if (!existsSync(codePath) || !existsSync(manifestPath)) return `${codePath} or its manifest is missing`;
  let manifest: BundleManifest;
  try {
    manifest = JSON.parse(readFileSync(manifestPath, 'utf8')) as BundleManifest;
  } catch {
    return `${manifestPath} is not valid JSON`;
  }
  if (manifest.format !== 1) return `${manifestPath} has unknown format ${String(manifest.format)}`;
  if (manifest.sdkVersion !== sdkVersion()) {
    return `it was built with @temporalio/workflow ${manifest.sdkVersion}, installed is ${sdkVersion()}`;
  }
  if (manifest.workflowsPath !== projectPath(workflowsPath)) {
    return `it bundles ${manifest.workflowsPath}, not ${projectPath(workflowsPath)}`;
  }
  const wanted = {
    failureConverterPath: projectPath(converter?.failureConverterPath),
    payloadConverterPath: projectPath(converter?.payloadConverterPath),
  };
  for (const key of ['failureConverterPath', 'payloadConverterPath'] as const) {
    if (manifest[key] !== wanted[key])
      return `it was built with ${key} ${manifest[key]}, the worker uses ${wanted[key]}`;
  }
  for (const [rel, hash] of Object.entries(manifest.sources)) {
    const file = join(PROJECT_ROOT, rel);
    if (!existsSync(file)) return `${rel} was removed since it was built`;
    if (sha256(file) !== hash) return `${rel} changed since it was built`;
  }
  return undefined;
}

/**
 * The prebuilt bundle for this data converter, or undefined when there is none or it is stale (the worker then
 * bundles at start). Pass the same data converter the Worker gets. Says which bundle it uses; when it uses none,
 * it says why, except for a missing bundle when running from source (the usual case in development).
 */
export function loadWorkflowBundle(
  dataConverter: DataConverter | undefined,
  options: {
    dir?: string;
    workflowsPath?: string;
    /** @default console.warn */
    warn?: (message: string) => void;
    /** @default console.log */
    log?: (message: string) => void;
  } = {},
): { codePath: string } | undefined {
  const codePath = join(options.dir ?? DEFAULT_BUNDLE_DIR, bundleFileName(dataConverter));
  const shown = relative(process.cwd(), codePath);
  const warn = options.warn ?? console.warn;
  if (!existsSync(codePath)) {
    if (COMPILED)
      warn(`worker: no prebuilt ${shown}. Bundling workflows at start; run "${BUILD_COMMAND}" to build it.`);
    return undefined;
  }
  const problem = bundleProblem(codePath, dataConverter, options.workflowsPath ?? SITEFLEET_WORKFLOWS_PATH);
  if (problem) {
    warn(
      `worker: not using prebuilt ${shown}: ${problem}. Bundling workflows at start; ` +
        `run "${BUILD_COMMAND}" to refresh it.`,
    );
    return undefined;
  }
  (options.log ?? console.log)(`worker: using prebuilt workflow bundle ${shown}`);
  return { codePath };
}

if (require.main === module) {
  const started = Date.now();
  buildSitefleetBundles().then(
    (files) => {
      for (const file of files) console.log(`wrote ${relative(process.cwd(), file.codePath)}`);
      console.log(`workflow bundles built in ${((Date.now() - started) / 1000).toFixed(1)} s`);
    },
    (err: unknown) => {
      console.error('bundle failed:', err);
      process.exit(1);
    },
  );
}
