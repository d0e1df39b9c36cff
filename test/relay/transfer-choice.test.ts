/**
 * The automatic choice between relay and parallel rsync (workflows/relay.ts): relay only where the controller's
 * uplink is known to be the bottleneck and relay is predicted clearly faster; rsync everywhere else.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { chooseTransfer, decideWithoutEstimate, type TransferEstimate } from '../../workflows/relay';

const WORDPRESS = 51_194_984;

/** `members` members, the platform missing on `missing` of them and `changed` bytes out of date on the others. */
function estimate(members: number, missing = members, changed = 0, bytes = WORDPRESS): TransferEstimate {
  return {
    bytes,
    members: Array.from({ length: members }, (_, i) => ({
      server: `h${i + 1}`,
      exists: i >= missing,
      changedBytes: i < missing ? bytes : changed,
    })),
  };
}

describe('choosing relay or rsync', () => {
  test('a forced mode wins, without looking at the platform', () => {
    assert.equal(decideWithoutEstimate({ mode: 'relay' }, 1)?.mode, 'relay');
    assert.equal(decideWithoutEstimate({ mode: 'rsync', uplinkMbit: 10 }, 64)?.mode, 'rsync');
  });

  test('without an uplink hint auto never relays: unshaped, parallel rsync is faster here', () => {
    assert.equal(decideWithoutEstimate(undefined, 8)?.mode, 'rsync');
    assert.equal(decideWithoutEstimate({ mode: 'auto' }, 8)?.mode, 'rsync');
    assert.equal(chooseTransfer({}, estimate(8)).mode, 'rsync');
  });

  test('too few members: rsync, decided before any estimate', () => {
    assert.equal(decideWithoutEstimate({ uplinkMbit: 200 }, 2)?.mode, 'rsync');
    assert.equal(decideWithoutEstimate({ uplinkMbit: 200 }, 3), undefined, 'three members need an estimate');
  });

  test('a new platform on 4 and 8 members behind a 200 Mbit/s uplink: relay', () => {
    for (const members of [4, 8]) {
      const d = chooseTransfer({ uplinkMbit: 200 }, estimate(members));
      assert.equal(d.mode, 'relay', d.reason);
      assert.ok((d.predicted?.relaySeconds ?? 0) * 1.5 < (d.predicted?.rsyncSeconds ?? 0));
    }
  });

  test('a fast uplink: rsync, even for a new platform on 8 members', () => {
    const d = chooseTransfer({ uplinkMbit: 10_000 }, estimate(8));
    assert.equal(d.mode, 'rsync', d.reason);
  });

  test('a small change to an existing platform: rsync, however slow the uplink', () => {
    const d = chooseTransfer({ uplinkMbit: 200 }, estimate(8, 0, 300_000));
    assert.equal(d.mode, 'rsync', d.reason);
    assert.match(d.reason, /only/);
  });

  test('a large change to an existing platform counts like a new one', () => {
    assert.equal(chooseTransfer({ uplinkMbit: 200 }, estimate(8, 0, 40_000_000)).mode, 'relay');
  });

  test('members with slower links than the controller make relay slower too', () => {
    // Each member's own link limits rsync per member, and limits the relay's every hop.
    const d = chooseTransfer({ uplinkMbit: 1000, memberLinkMbit: 100 }, estimate(4));
    assert.equal(d.mode, 'rsync', d.reason);
  });

  test('the choice is a function of its inputs: same inputs, same answer', () => {
    const inputs = [{ uplinkMbit: 200 }, estimate(6, 3, 1_000_000)] as const;
    assert.deepEqual(chooseTransfer(...inputs), chooseTransfer(...inputs));
  });
});
