/**
 * Reliability: a member's network link is cut while the platform's rsync streams files to it, and comes back 25 s
 * later. The transfer to that member completes once the link is back and every member ends with exactly the source
 * tree. The member's link is shaped to 40 Mbit/s (tc tbf on its veth) so that the cut lands mid-transfer, not
 * before the first file or after the last.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { describe, test } from 'node:test';
import { promisify } from 'node:util';
import type { Platform } from '../../domain/model';
import { workflowIds } from '../../domain/operations';
import type { PlatformResult } from '../../workflows/platform';
import { clusterGroup, useFleet } from '../support/fleet';
import {
  activityRuns,
  manifestDiff,
  platformManifest,
  retried,
  sleep,
  sourceManifest,
  waitFor,
} from '../support/reliability';

const run = promisify(execFile);
const fleet = useFleet({ hosts: [{ roles: ['web-nginx'] }, { roles: ['web-nginx'] }, { roles: ['web-nginx'] }] });

const MEMBERS = ['h1', 'h2', 'h3'];
const SOURCE = '/usr/share/wordpress';
const CUT_MS = 25_000;
/** A token bucket toward the member: one WordPress tree then takes ~10 s instead of ~1 s. */
/** How many files of the platform have reached the host so far. */
const FILES_SO_FAR = 'find /var/aegir/platforms/wp -type f 2>/dev/null | wc -l';
const SHAPE_40MBIT = 'tbf rate 40mbit burst 256kb latency 50ms'.split(' ');
const platform: Platform = {
  name: 'wp',
  target: { kind: 'cluster', name: 'c1' },
  source: { type: 'path', path: SOURCE },
  profile: 'wordpress',
};

describe('a member link is cut during an rsync', () => {
  test('CreatePlatformOnCluster completes once the link is back; every member has exactly the source tree', async (t) => {
    const group = clusterGroup(
      'c1',
      MEMBERS.map((n) => fleet().server(n)),
    );
    const veth = fleet().bed.host('h2').veth;
    await run('tc', ['qdisc', 'add', 'dev', veth, 'root', ...SHAPE_40MBIT]);
    const handle = await fleet().start('CreatePlatformOnCluster', workflowIds.platform('wp'), { platform, group });
    const filesOnH2 = async () => Number((await fleet().bed.exec('h2', ['sh', '-c', FILES_SO_FAR])).stdout);
    let result: PlatformResult;
    let cutAt: number;
    let filesAtCut: number;
    try {
      // Cut once files are landing on h2 (watched from inside the host, not through its link).
      await waitFor(async () => (await filesOnH2()) >= 200);
      cutAt = Date.now();
      await fleet().bed.cutLink('h2');
      filesAtCut = await filesOnH2();
      try {
        await sleep(CUT_MS);
      } finally {
        await fleet().bed.restoreLink('h2');
      }
      result = (await handle.result()) as PlatformResult;
    } finally {
      await run('tc', ['qdisc', 'del', 'dev', veth, 'root']);
    }
    const runs = await activityRuns(handle);
    const total = (await sourceManifest(SOURCE)).split('\n').filter((l) => l.startsWith('f ')).length;
    assert.ok(filesAtCut < total, `the cut came mid-transfer (${filesAtCut} of ${total} files on h2)`);
    t.diagnostic(
      `cut with ${filesAtCut} of ${total} files on h2, link down ${CUT_MS} ms; completed ${Date.now() - cutAt} ms after the cut; ` +
        `run again: ${retried(runs).join('; ') || 'none (the same rsync resumed)'}`,
    );

    assert.deepEqual(result.synced.map((s) => s.server).sort(), MEMBERS);
    const expected = await sourceManifest(SOURCE);
    for (const host of MEMBERS) {
      const diff = manifestDiff(expected, await platformManifest(fleet().bed, host, '/var/aegir/platforms/wp'));
      assert.deepEqual(diff, { missing: [], extra: [] }, `${host} has exactly the source tree`);
    }
    assert.deepEqual(
      runs
        .filter((r) => r.type === 'syncPlatform')
        .map((r) => `${r.server}:${r.outcome}`)
        .sort(),
      MEMBERS.map((m) => `${m}:completed`),
    );
  });
});
