/**
 * `npm run demo` end to end, as a child process with its own data dir, ports, bed name and subnet, told to exit after
 * setup: it must bring up sitefleet and the test hosts, serve both WordPress sites on every member, print where
 * everything is, and leave nothing behind.
 */
import assert from 'node:assert/strict';
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { connect, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { after, describe, test } from 'node:test';
import { promisify } from 'node:util';
import { bedPaths, defaultBaseDir, downBed } from '../../testbed';
import { nextBedNameAndSubnet } from '../support/testbed';

const REPO_ROOT = resolve(__dirname, '..', '..');
/** Setup takes about a minute on two cores; a cold workflow bundle and a busy machine take longer. */
const DEMO_TIMEOUT_MS = 15 * 60_000;
const run = promisify(execFile);

/** A TCP port nothing listens on right now. */
function freePort(): Promise<number> {
  return new Promise((resolvePort, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() => resolvePort(typeof address === 'object' && address ? address.port : 0));
    });
  });
}

function listening(port: number): Promise<boolean> {
  return new Promise((resolveOpen) => {
    const socket = connect(port, '127.0.0.1');
    socket.once('connect', () => {
      socket.destroy();
      resolveOpen(true);
    });
    socket.once('error', () => resolveOpen(false));
  });
}

void describe('npm run demo', () => {
  let child: ChildProcess | undefined;
  let dataDir: string | undefined;
  let bedName: string | undefined;

  after(async () => {
    if (child && child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    // Never leave a bed behind, whatever the demo did.
    if (bedName) await downBed(bedName, defaultBaseDir()).catch(() => undefined);
    if (dataDir) rmSync(dataDir, { recursive: true, force: true });
  });

  void test('sets up a cluster and a pack with WordPress, prints where everything is, and cleans up', async () => {
    const [apiPort, temporalPort, uiPort] = [await freePort(), await freePort(), await freePort()];
    const bed = await nextBedNameAndSubnet();
    bedName = bed.name;
    dataDir = mkdtempSync(join(tmpdir(), 'sitefleet-demo-test-'));
    const env: NodeJS.ProcessEnv = {
      ...process.env,
      SITEFLEET_DATA_DIR: dataDir,
      SITEFLEET_API_PORT: String(apiPort),
      TEMPORAL_ADDRESS: `127.0.0.1:${temporalPort}`,
      SITEFLEET_UI_PORT: String(uiPort),
      SITEFLEET_DEMO_BED: bed.name,
      SITEFLEET_DEMO_SUBNET: bed.subnet,
      SITEFLEET_DEMO_EXIT_AFTER_SETUP: '1',
    };
    for (const name of ['SITEFLEET_UI_URL', 'TEMPORAL_NAMESPACE', 'SITEFLEET_TASK_QUEUE']) delete env[name];

    const proc = spawn(process.execPath, ['--import', 'tsx', join(REPO_ROOT, 'scripts', 'demo.ts')], {
      cwd: REPO_ROOT,
      env,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    child = proc;
    let out = '';
    proc.stdout.on('data', (chunk: Buffer) => (out += chunk.toString('utf8')));
    proc.stderr.on('data', (chunk: Buffer) => (out += chunk.toString('utf8')));
    const code = await new Promise<number | null>((resolveExit) => {
      const timer = setTimeout(() => proc.kill('SIGTERM'), DEMO_TIMEOUT_MS);
      proc.once('exit', (c) => {
        clearTimeout(timer);
        resolveExit(c);
      });
    });
    const tail = out.split('\n').slice(-60).join('\n');
    assert.equal(code, 0, `the demo exits 0 after setup\n${tail}`);

    assert.match(out, new RegExp(`HTTP API: +http://127\\.0\\.0\\.1:${apiPort}/v1`), tail);
    assert.match(out, new RegExp(`Temporal Web UI: +http://127\\.0\\.0\\.1:${uiPort}\\b`), tail);
    assert.match(out, new RegExp(`Fleet health page: +http://127\\.0\\.0\\.1:${apiPort}/fleet`), tail);
    assert.match(out, /summary: setup complete, everything healthy/, tail);
    assert.match(out, /cluster demo-cluster: every node healthy/, tail);
    assert.match(out, /pack demo-pack: every node healthy/, tail);
    assert.match(out, /site cluster-blog\.example\.com answered on cweb1, cweb2, cweb3\b/, tail);
    assert.match(out, /site pack-blog\.example\.com answered on pweb1, pweb2, pweb3\b/, tail);
    assert.match(out, /fleet health page: HTTP 200, shows 2 of 2 groups/, tail);
    // Per-node progress was shown while the operations ran.
    assert.match(out, /\[site\/pack-blog\.example\.com\] +pweb2 +done/, tail);
    assert.match(out, /\[pack\/demo-pack\] SetupPackShare pack\/demo-pack: COMPLETED/, tail);

    // Nothing is left: no bridge, no netns, no bed dir, nothing listening on the demo's ports.
    assert.match(out, new RegExp(`test hosts of bed "${bed.name}" removed`), tail);
    const links = await run('ip', ['-o', 'link', 'show']);
    assert.doesNotMatch(links.stdout, new RegExp(`\\bsf-${bed.name}\\b`), 'the bridge is gone');
    const netns = await run('ip', ['netns', 'list']);
    assert.doesNotMatch(netns.stdout, new RegExp(`\\bsf-${bed.name}-`), 'the hosts are gone');
    assert.equal(existsSync(bedPaths(bed.name, defaultBaseDir()).dir), false, 'the bed dir is gone');
    for (const port of [apiPort, temporalPort, uiPort])
      assert.equal(await listening(port), false, `port ${port} closed`);
  });
});
