/**
 * What every bundle of sitefleet's workflows needs beyond the SDK's defaults.
 *
 * The domain field rules (domain/fields.ts), which workflows use to check their input, validate domain names with
 * tr46 (UTS #46), and tr46 loads the userland punycode package as `require("punycode/")`. The SDK's bundler takes
 * any request starting with `punycode` for Node's deprecated built-in and refuses it; this points the request at
 * the package's file before that check, so the bundle holds the same pure-JavaScript punycode that Node runs.
 */
import type { BundleOptions } from '@temporalio/worker';

type WebpackConfig = Parameters<NonNullable<BundleOptions['webpackConfigHook']>>[0];
type WebpackPlugin = NonNullable<WebpackConfig['plugins']>[number];

const USERLAND_PUNYCODE = require.resolve('punycode/');

interface ResolveData {
  request: string;
  /** The externals check (where the SDK refuses disallowed modules) reads the request of the dependency. */
  dependencies: { request?: string }[];
}
interface NormalModuleFactory {
  hooks: { beforeResolve: { tap(name: string, fn: (data: ResolveData) => void): void } };
}
interface Compiler {
  hooks: { normalModuleFactory: { tap(name: string, fn: (factory: NormalModuleFactory) => void): void } };
}

const userlandPunycode = {
  apply(compiler: Compiler) {
    compiler.hooks.normalModuleFactory.tap('sitefleet-userland-punycode', (factory) => {
      factory.hooks.beforeResolve.tap('sitefleet-userland-punycode', (data) => {
        if (data.request !== 'punycode/') return;
        data.request = USERLAND_PUNYCODE;
        for (const dependency of data.dependencies) {
          if (dependency.request === 'punycode/') dependency.request = USERLAND_PUNYCODE;
        }
      });
    });
  },
} as unknown as WebpackPlugin;

/** The webpack hook every workflow bundle of sitefleet is built with (after `then`, when given). */
export function sitefleetWebpackConfig(then?: (config: WebpackConfig) => WebpackConfig) {
  return (config: WebpackConfig): WebpackConfig => {
    const withPunycode = { ...config, plugins: [...(config.plugins ?? []), userlandPunycode] };
    return then ? then(withPunycode) : withPunycode;
  };
}

/**
 * The workflow interceptor modules every bundle and worker of sitefleet loads: the operation duration metric
 * (workflows/operation-metrics.ts). Pass them as `workflowInterceptorModules` to bundleWorkflowCode, or as
 * `interceptors.workflowModules` to a Worker that bundles at start.
 */
export const SITEFLEET_WORKFLOW_INTERCEPTOR_MODULES: string[] = [require.resolve('../workflows/operation-metrics')];
