/**
 * Link shaping of the test bed (testbed/shaping.ts): each host's link is limited in both directions, the
 * controller's egress in total, and `down` leaves no qdisc behind.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { after, before, describe, test } from 'node:test';
import { runCommand } from '../../testbed/command';
import { readLinkShaping } from '../../testbed/shaping';
import type { Bed } from '../../testbed';
import { startTestBed, stopTestBed } from '../support/testbed';

const RATE_MBIT = 20;
const BYTES = 2_000_000;

/** Seconds an ssh command with `input` on stdin takes (its output is read and thrown away). */
function timedSsh(bed: Bed, host: string, command: string, input?: Buffer): Promise<number> {
  return new Promise((resolve, reject) => {
    const started = performance.now();
    const child = spawn('ssh', [...bed.sshArgs(host), command], { stdio: ['pipe', 'pipe', 'pipe'] });
    let stderr = '';
    child.stdout.on('data', () => undefined);
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
    child.stdin.end(input ?? Buffer.alloc(0));
    child.on('error', reject);
    child.on('close', (code) =>
      code === 0 ? resolve((performance.now() - started) / 1000) : reject(new Error(`ssh ${host}: ${code} ${stderr}`)),
    );
  });
}

const mbit = (bytes: number, seconds: number): number => (bytes * 8) / seconds / 1e6;

describe(`a bed with ${RATE_MBIT} Mbit/s links`, () => {
  let bed: Bed | undefined;
  before(async () => {
    bed = await startTestBed({
      hosts: [{ roles: [] }, { roles: [] }],
      shaping: { rate: `${RATE_MBIT}mbit`, controllerRate: `${RATE_MBIT}mbit` },
    });
  });
  after(async () => {
    if (bed) await stopTestBed(bed);
  });

  test('every link has its tbf: both ends of each host link and the bridge', async () => {
    const rows = await readLinkShaping((bed as Bed).plan);
    assert.deepEqual(
      rows.map((r) => `${r.link} ${r.kind} ${r.rate ?? ''}`),
      ['bridge', 'h1', 'h1:eth0', 'h2', 'h2:eth0'].map((l) => `${l} tbf ${RATE_MBIT}Mbit`),
    );
  });

  test('traffic to a host and from a host is held to the rate', async () => {
    const b = bed as Bed;
    await timedSsh(b, 'h1', 'true');
    const toHost = await timedSsh(b, 'h1', 'cat > /dev/null', Buffer.alloc(BYTES, 1));
    const fromHost = await timedSsh(b, 'h1', `head -c ${BYTES} /dev/zero`);
    // The time includes the ssh handshake, so the measured rate is a little under the limit, never over it.
    assert.ok(mbit(BYTES, toHost) < RATE_MBIT * 1.1, `to h1: ${mbit(BYTES, toHost).toFixed(1)} Mbit/s`);
    assert.ok(mbit(BYTES, fromHost) < RATE_MBIT * 1.1, `from h1: ${mbit(BYTES, fromHost).toFixed(1)} Mbit/s`);
  });

  test("the controller's egress is shared by all hosts", async () => {
    const b = bed as Bed;
    const started = performance.now();
    await Promise.all(['h1', 'h2'].map((h) => timedSsh(b, h, 'cat > /dev/null', Buffer.alloc(BYTES, 1))));
    const seconds = (performance.now() - started) / 1000;
    assert.ok(mbit(2 * BYTES, seconds) < RATE_MBIT * 1.1, `to both: ${mbit(2 * BYTES, seconds).toFixed(1)} Mbit/s`);
  });

  test('down removes the shaped links, and their qdiscs with them', async () => {
    const b = bed as Bed;
    bed = undefined;
    await stopTestBed(b);
    for (const dev of [b.plan.bridge, ...b.plan.hosts.map((h) => h.veth)]) {
      const r = await runCommand(['tc', 'qdisc', 'show', 'dev', dev], { check: false });
      assert.notEqual(r.code, 0, `${dev} is gone`);
    }
  });
});
