/**
 * A throw-away Temporal dev server from the cached CLI (no download is possible here), with sitefleet's search
 * attributes, for tests and the benchmark: `const env = await startEphemeralTemporal()`, later `env.teardown()`.
 */
import { TestWorkflowEnvironment } from '@temporalio/testing';
import { ALL_SEARCH_ATTRIBUTES } from '../domain/search-attributes';
import { ensureTemporalCli } from './temporal-cli';

export async function startEphemeralTemporal(): Promise<TestWorkflowEnvironment> {
  const path = await ensureTemporalCli();
  return TestWorkflowEnvironment.createLocal({
    server: {
      executable: { type: 'existing-path', path },
      searchAttributes: ALL_SEARCH_ATTRIBUTES,
      ui: false,
      extraArgs: ['--log-level', 'error'],
    },
  });
}
