import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { describe, test } from 'node:test';
import { promisify } from 'node:util';
import { defaultBaseDir, downBed, readState, bedPaths } from '../../testbed';
import { nextBedNameAndSubnet, startTestBed } from '../support/testbed';

const run = promisify(execFile);
const REPO_ROOT = path.resolve(__dirname, '..', '..');

interface MachineSnapshot {
  netns: string[];
  links: string[];
  mounts: string[];
}

/** The machine's namespaces, root-namespace links and mount table. */
async function snapshot(): Promise<MachineSnapshot> {
  const netns = (await run('ip', ['netns', 'list'])).stdout.split('\n').filter(Boolean);
  const links = (JSON.parse((await run('ip', ['-j', 'link', 'show'])).stdout) as { ifname: string }[]).map(
    (l) => l.ifname,
  );
  const mounts = (await fs.readFile('/proc/self/mountinfo', 'utf8')).split('\n').filter(Boolean);
  return { netns, links, mounts };
}

/**
 * A snapshot minus what other beds (run by other test files at the same time) own, and minus
 * /run/netns itself, which the first `ip netns add` after boot creates and keeps.
 */
function ignoringOtherBeds(snap: MachineSnapshot, ownBed: string): MachineSnapshot {
  const mine = (text: string) => {
    const match = /sf-([a-z0-9]+)/.exec(text);
    return match === null || match[1] === ownBed;
  };
  return {
    netns: snap.netns.filter(mine).sort(),
    links: snap.links.filter(mine).sort(),
    mounts: snap.mounts
      .filter((line) => line.split(' ')[4] !== '/run/netns')
      .filter(mine)
      .sort(),
  };
}

const pidAlive = (pid: number) =>
  fs.stat(`/proc/${pid}`).then(
    () => true,
    () => false,
  );

void describe('cleanup', () => {
  void test('down removes every namespace, link, mount, process and file the bed made, and is idempotent', async () => {
    const rawBefore = await snapshot();
    const bed = await startTestBed({ hosts: [{ roles: ['web-nginx'] }, { roles: ['db'] }] });
    const before = ignoringOtherBeds(rawBefore, bed.name);
    const during = ignoringOtherBeds(await snapshot(), bed.name);
    assert.equal(during.netns.length, before.netns.length + 2, 'up created two namespaces');
    const state = await readState(bed.paths);
    const initPids = Object.values(state?.hosts ?? {}).map((h) => h.initPid ?? 0);
    assert.equal(initPids.length, 2);

    const report = await bed.down();
    assert.equal(report.removedNetns.length, 2);
    assert.equal(report.removedLinks.length, 3);
    assert.deepEqual(ignoringOtherBeds(await snapshot(), bed.name), before);
    for (const pid of initPids) assert.equal(await pidAlive(pid), false, `init ${pid} is gone`);
    await assert.rejects(fs.stat(bed.paths.dir));

    const again = await bed.down();
    assert.deepEqual([again.removedNetns, again.removedLinks, again.removedDir], [[], [], false]);
  });

  void test('down cleans up after an `up` that was killed halfway', async () => {
    const { name, subnet } = await nextBedNameAndSubnet();
    const before = ignoringOtherBeds(await snapshot(), name);
    const baseDir = defaultBaseDir();
    const cli = path.join(REPO_ROOT, 'testbed', 'cli.ts');
    const up = spawn(
      process.execPath,
      ['--import', 'tsx', cli, '--name', name, '--dir', baseDir, 'up', '4', '--subnet', subnet],
      {
        cwd: REPO_ROOT,
        stdio: 'ignore',
      },
    );
    try {
      // Kill it (our own child) as soon as a host has booted: network made, hosts half up.
      const deadline = Date.now() + 20_000;
      for (;;) {
        const state = await readState(bedPaths(name, baseDir)).catch(() => undefined);
        if (Object.values(state?.hosts ?? {}).some((h) => h.initPid !== undefined)) break;
        assert.ok(Date.now() < deadline, 'up booted a host within 20 s');
        await new Promise((r) => setTimeout(r, 5));
      }
    } finally {
      up.kill('SIGKILL');
    }
    await new Promise((r) => up.once('exit', r));
    assert.notDeepEqual(ignoringOtherBeds(await snapshot(), name), before, 'the killed up left things behind');

    await downBed(name, baseDir);
    assert.deepEqual(ignoringOtherBeds(await snapshot(), name), before);
    await assert.rejects(fs.stat(path.join(baseDir, name)));
  });
});
