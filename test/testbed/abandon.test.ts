import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { describe, test } from 'node:test';
import { bedPaths, defaultBaseDir, readState } from '../../testbed';
import { reclaimStaleBeds } from '../support/testbed';

const REPO_ROOT = path.resolve(__dirname, '..', '..');
const FIXTURE = path.join(__dirname, 'fixtures', 'abandon-bed.ts');

/** Starts the fixture (our own child) and resolves with the name of the bed it brought up. */
function startAbandoningProcess(mode: 'wait' | 'throw'): Promise<{ child: ChildProcess; name: string }> {
  const child = spawn(process.execPath, ['--import', 'tsx', FIXTURE, mode], {
    cwd: REPO_ROOT,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  return new Promise((resolve, reject) => {
    let out = '';
    child.stdout?.on('data', (chunk: Buffer) => {
      out += chunk.toString();
      const match = /^BED (\S+)$/m.exec(out);
      if (match?.[1]) resolve({ child, name: match[1] });
    });
    child.once('exit', (code) => reject(new Error(`fixture exited ${code} before its bed was up: ${out}`)));
  });
}

async function bedIsGone(name: string, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  const links = async () =>
    (await fs.readdir('/sys/class/net')).filter((l) => l === `sf-${name}` || l.startsWith(`sf-${name}-`));
  const netns = async () =>
    (await fs.readdir('/run/netns').catch(() => [] as string[])).filter((n) => n.startsWith(`sf-${name}-`));
  while (Date.now() < deadline) {
    const dirGone = await fs.stat(bedPaths(name).dir).then(
      () => false,
      () => true,
    );
    if (dirGone && (await links()).length === 0 && (await netns()).length === 0) return true;
    await new Promise((r) => setTimeout(r, 50));
  }
  return false;
}

const exited = (child: ChildProcess) => new Promise<number | null>((r) => child.once('exit', (code) => r(code)));

void describe('a test process that ends without after()', () => {
  void test('tears its bed down on SIGTERM', async () => {
    const { child, name } = await startAbandoningProcess('wait');
    const exit = exited(child);
    child.kill('SIGTERM');
    assert.equal(await exit, 143);
    assert.ok(await bedIsGone(name, 100), `bed ${name} is gone when the process has exited`);
  });

  void test('tears its bed down after an uncaught error', async () => {
    const { child, name } = await startAbandoningProcess('throw');
    assert.notEqual(await exited(child), 0);
    assert.ok(await bedIsGone(name, 15_000), `bed ${name} is torn down by the detached down`);
  });

  void test('leaves a bed that the next test process reclaims when it was SIGKILLed', async () => {
    const { child, name } = await startAbandoningProcess('wait');
    const exit = exited(child);
    child.kill('SIGKILL');
    await exit;
    const state = await readState(bedPaths(name));
    assert.equal(state?.ownerPid, child.pid);
    await reclaimStaleBeds(defaultBaseDir());
    assert.ok(await bedIsGone(name, 100), `bed ${name} was reclaimed`);
  });
});
