import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { startTestTemporal } from '../support/temporal';
import { freePort } from '../support/reliability';
import { startDevServer, temporalAnswers } from '../../devserver/dev-server';
import { ensureTemporalCli } from '../../devserver/temporal-cli';
import { loadSettings } from '../../config/settings';

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

describe('dev server start-up (devserver/dev-server.ts startDevServer)', () => {
  let dir: string;
  let cli: string;
  const started: ChildProcess[] = [];
  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'sitefleet-devserver-'));
    cli = await ensureTemporalCli();
  });
  after(() => {
    for (const child of started) if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
    rmSync(dir, { recursive: true, force: true });
  });

  /** A stand-in for the CLI: a shell script with the given body. */
  function fakeCli(name: string, body: string): string {
    const path = join(dir, name);
    writeFileSync(path, `#!/bin/sh\n${body}\n`, { mode: 0o755 });
    return path;
  }
  async function settingsFor(name: string) {
    return loadSettings({
      SITEFLEET_DATA_DIR: join(dir, `${name}-data`),
      TEMPORAL_ADDRESS: `127.0.0.1:${await freePort()}`,
      SITEFLEET_UI_PORT: String(await freePort()),
    });
  }
  const quiet = { log: () => undefined };

  test('fails with the server own output when it dies', async () => {
    const dying = fakeCli('dying', 'echo "unable to open database file: permission denied" >&2; exit 3');
    await assert.rejects(startDevServer(dying, await settingsFor('dying'), quiet), (err: Error) => {
      assert.match(err.message, /exited \(code 3\) before answering/);
      assert.match(err.message, /unable to open database file: permission denied/);
      return true;
    });
  });

  test('gives up on a process that neither uses CPU nor prints, and stops it', async () => {
    const stuck = fakeCli('stuck', 'echo "hanging"; exec sleep 60');
    const lines: string[] = [];
    await assert.rejects(
      startDevServer(stuck, await settingsFor('stuck'), {
        stallMs: 1500,
        reportEveryMs: 500,
        log: (l) => lines.push(l),
      }),
      (err: Error) => {
        assert.match(err.message, /stopped making progress \(no CPU use and no output for 2 s\)/);
        assert.match(err.message, /hanging/);
        return true;
      },
    );
    assert.ok(
      lines.some((l) =>
        /^waiting for temporal server start-dev to answer at 127\.0\.0\.1:\d+ \(\d+ s; process \d+ alive/.test(l),
      ),
      `says what it waits for: ${lines.join(' | ')}`,
    );
  });

  test('waits past the stall window for a slow start that keeps making progress', async () => {
    // Prints for 3 s (twice the stall window), then becomes the real dev server.
    const slow = fakeCli('slow', `for i in 1 2 3 4 5 6; do echo "preparing $i"; sleep 0.5; done\nexec "${cli}" "$@"`);
    const settings = await settingsFor('slow');
    const t0 = Date.now();
    const child = await startDevServer(slow, settings, { ...quiet, stallMs: 1500 });
    started.push(child);
    assert.ok(Date.now() - t0 >= 3000, 'it did wait through the slow part');
    assert.ok(await temporalAnswers(settings.temporalAddress));
    const exited = new Promise((r) => child.once('exit', r));
    child.kill('SIGTERM');
    await exited;
  });
});
