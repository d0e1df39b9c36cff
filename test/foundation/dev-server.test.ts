import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { startTestTemporal } from '../support/temporal';

describe('embedded Temporal dev server', () => {
  let env: TestWorkflowEnvironment;
  before(async () => {
    env = await startTestTemporal();
  });
  after(async () => {
    await env?.teardown();
  });

  test('registers the site, platform, cluster and server search attributes', async () => {
    const res = await env.connection.operatorService.listSearchAttributes({ namespace: env.namespace ?? 'default' });
    const custom = Object.keys(res.customAttributes ?? {});
    for (const name of ['SitefleetSite', 'SitefleetPlatform', 'SitefleetCluster', 'SitefleetServer']) {
      assert.ok(custom.includes(name), `${name} is registered (found: ${custom.join(', ')})`);
    }
  });
});
