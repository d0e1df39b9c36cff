/**
 * `sitefleet apply --example`, applied to test hosts: seven hosts as the README quick-start brings up (their
 * addresses put in place of the example's 10.77.0.x, since each test bed has a subnet of its own), the real API and
 * worker, and the CLI's apply. Ends with WordPress served through every web node of the cluster and the pack.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { parse as parseYaml } from 'yaml';
import { closeAllConnections } from '../../activities/transport/ssh';
import { applyFileSchema } from '../../cli/apply';
import { FLEET_EXAMPLE } from '../../cli/fleet-doc';
import { runCli } from '../../cli/program';
import type { Bed } from '../../testbed';
import { startHarness, type Harness } from '../api/harness';
import { startTestBed, stopTestBed } from '../support/testbed';
import { startTestTemporal } from '../support/temporal';
import { startTestWorker, type RunningWorker } from '../support/worker';

void describe('the fleet file example on test hosts', () => {
  let env: TestWorkflowEnvironment | undefined;
  let bed: Bed | undefined;
  let h: Harness | undefined;
  let worker: RunningWorker | undefined;
  let dir: string;
  const keyBefore = process.env.SITEFLEET_SSH_KEY;

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'sitefleet-example-'));
    [env, bed] = await Promise.all([
      startTestTemporal(),
      // The quick-start's bed: three cluster nodes, a pack master that exports with nfs-ganesha, two slaves, a db.
      startTestBed({
        hosts: [
          { roles: ['web-nginx'] },
          { roles: ['web-nginx'] },
          { roles: ['web-nginx'] },
          { roles: ['web-nginx', 'nfs'] },
          { roles: ['web-nginx'] },
          { roles: ['web-nginx'] },
          { roles: ['db'] },
        ],
      }),
    ]);
    // The example names no key: the worker's own, as in the quick-start (SITEFLEET_SSH_KEY).
    process.env.SITEFLEET_SSH_KEY = bed.paths.clientKey;
    h = await startHarness({ env });
    worker = await startTestWorker(env, h.settings.taskQueue);
  });
  after(async () => {
    await worker?.stop().catch(() => undefined);
    await closeAllConnections();
    await h?.close();
    await env?.teardown().catch(() => undefined);
    if (bed) await stopTestBed(bed);
    if (keyBefore === undefined) delete process.env.SITEFLEET_SSH_KEY;
    else process.env.SITEFLEET_SSH_KEY = keyBefore;
    rmSync(dir, { recursive: true, force: true });
  });

  void test('apply --example, then apply it: WordPress answers through every web node', async () => {
    const out: string[] = [];
    const cliEnv = { SITEFLEET_API_URL: h!.url, SITEFLEET_TOKEN: h!.token };
    const run = (args: string[]) =>
      runCli(args, { out: (l) => out.push(l), err: (l) => out.push(l), env: cliEnv, isTTY: false });

    assert.equal(await run(['apply', '--example']), 0);
    const example = out.splice(0).join('\n');
    const prefix = bed!.ip('h1').split('.').slice(0, 3).join('.');
    const file = join(dir, 'fleet.yaml');
    writeFileSync(file, example.replaceAll('10.77.0.', `${prefix}.`));

    const code = await run(['apply', file, '--yes', '--poll-interval', '500']);
    assert.equal(code, 0, out.join('\n'));
    assert.equal(out[out.length - 1], 'applied');

    const description = applyFileSchema.parse(parseYaml(FLEET_EXAMPLE));
    const webNodes = (domain: string) => {
      const site = description.sites.find((s) => s.domain === domain)!;
      const platform = description.platforms.find((p) => p.name === site.platform)!;
      if (platform.target.kind === 'cluster') return description.clusters[0]!.members;
      const pack = description.packs[0]!;
      return [pack.master, ...pack.slaves];
    };
    for (const site of description.sites) {
      for (const node of webNodes(site.domain)) {
        const res = await bed!.httpGet(node, '/wp-login.php', { headers: { Host: site.domain } });
        assert.equal(res.status, 200, `${site.domain} through ${node}: ${res.status}`);
        assert.match(res.body, /wp-login\.php|WordPress/, `${site.domain} through ${node} is WordPress's login page`);
      }
    }
    // Applying again changes nothing.
    out.length = 0;
    assert.equal(await run(['apply', file, '--yes']), 0);
    assert.equal(out[out.length - 1], 'nothing to change', out.join('\n'));
  });
});
