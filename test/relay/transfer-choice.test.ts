/**
 * The automatic choice between relay and parallel rsync (workflows/relay.ts): relay only where the controller's
 * uplink is known to be the bottleneck and relay is predicted clearly faster; rsync everywhere else.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { fieldErrors } from '../../domain/fields';
import { clusterSchema, type Platform } from '../../domain/model';
import type { CreatePlatformInput } from '../../domain/operations';
import { effectiveTransferOptions, transferOptionsSchema } from '../../domain/transfer';
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

describe('transfer options as an operator sets them', () => {
  /** A cluster as the API stores it (validated by the domain schema), with four members. */
  const cluster = (transfer: unknown) =>
    clusterSchema.parse({ name: 'c1', members: ['h1', 'h2', 'h3', 'h4'], ...(transfer ? { transfer } : {}) });
  const platform: Platform = {
    name: 'wp',
    target: { kind: 'cluster', name: 'c1' },
    source: { type: 'path', path: '/usr/share/wordpress' },
    profile: 'wordpress',
  };
  /** The workflow input the API builds: the cluster's stored options, overridden by the deployment's. */
  const input = (stored: unknown, override?: unknown): CreatePlatformInput => {
    const transfer = effectiveTransferOptions(
      cluster(stored).transfer,
      override === undefined ? undefined : transferOptionsSchema.parse(override),
    );
    const group = { kind: 'cluster' as const, name: 'c1', members: [], codeReceivers: ['h1', 'h2', 'h3', 'h4'] };
    return { platform, group, ...(transfer ? { transfer } : {}) };
  };

  test("the workflow's choice reads the options the cluster stores", () => {
    assert.equal(chooseTransfer(input(undefined).transfer, estimate(4)).mode, 'rsync');
    assert.equal(chooseTransfer(input({ uplinkMbit: 200 }).transfer, estimate(4)).mode, 'relay');
    const fewer = chooseTransfer(input({ uplinkMbit: 200, minMembers: 5 }).transfer, estimate(4));
    assert.equal(fewer.mode, 'rsync');
    assert.match(fewer.reason, /fewer than 5/);
  });

  test("a deployment's own options override the stored ones field by field", () => {
    const stored = { uplinkMbit: 200, minMembers: 5, compress: false };
    assert.deepEqual(input(stored, { minMembers: 3 }).transfer, { uplinkMbit: 200, minMembers: 3, compress: false });
    assert.equal(chooseTransfer(input(stored, { minMembers: 3 }).transfer, estimate(4)).mode, 'relay');
    assert.equal(chooseTransfer(input({ uplinkMbit: 200 }, { mode: 'rsync' }).transfer, estimate(8)).mode, 'rsync');
    assert.equal(input(undefined, {}).transfer, undefined, 'no options at all: the input has none');
  });

  test('refuses values the rule cannot use, naming the field and the rule', () => {
    const refused = (value: unknown) => {
      const parsed = transferOptionsSchema.safeParse(value);
      assert.ok(!parsed.success, `${JSON.stringify(value)} was accepted`);
      return fieldErrors(parsed.error);
    };
    assert.deepEqual(refused({ uplinkMbit: -5 }), [
      { field: 'uplinkMbit', rule: 'must be a positive number of Mbit/s' },
    ]);
    assert.deepEqual(refused({ mode: 'fast' }), [{ field: 'mode', rule: 'must be "auto", "rsync" or "relay"' }]);
    assert.match(refused({ uplinkMbit: 200_000_000 })[0]!.rule, /at most 1000000 Mbit\/s .*not bit\/s/);
    assert.equal(refused({ memberLinkMbit: 0 })[0]!.field, 'memberLinkMbit');
    assert.deepEqual(refused({ minMembers: 1 }), [
      { field: 'minMembers', rule: 'must be at least 2: a relay passes the stream from one member to the next' },
    ]);
    assert.equal(refused({ minMembers: 2.5 })[0]!.rule, 'must be a whole number of members');
    assert.equal(refused({ minBytes: -1 })[0]!.rule, 'must be 0 or more bytes');
    assert.equal(refused({ compress: 'yes' })[0]!.rule, 'must be true or false');
    assert.match(refused({ uplink: 200 })[0]!.rule, /Unrecognized key: "uplink"/);
    const inCluster = clusterSchema.safeParse({ name: 'c1', members: ['h1'], transfer: { uplinkMbit: -5 } });
    assert.ok(!inCluster.success);
    assert.equal(fieldErrors(inCluster.error)[0]?.field, 'transfer.uplinkMbit');
  });
});
