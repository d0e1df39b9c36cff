/**
 * A real Temporal dev server for tests, started from the cached CLI (no download is possible here).
 * One per test file: `const env = await startTestTemporal()` in `before`, `await env.teardown()` in `after`.
 */
import { TestWorkflowEnvironment } from '@temporalio/testing';
import { ensureTemporalCli } from '../../devserver/temporal-cli';
import { ALL_SEARCH_ATTRIBUTES } from '../../domain/search-attributes';

export async function startTestTemporal(): Promise<TestWorkflowEnvironment> {
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
