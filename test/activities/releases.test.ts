/**
 * Release names and the choices made from a member's listing (domain/releases.ts): which release a rollback goes
 * to, which releases pruning removes.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { ADOPTED_RELEASE, previousRelease, releaseIdFor, releasesToPrune } from '../../domain/releases';

const r = (n: number) => `2026120${n}T120000Z-run${n}`;

void describe('release names', () => {
  void test('an id sorts by the time its rollout started and names its run', () => {
    const id = releaseIdFor(new Date('2026-12-06T18:15:07.123Z'), '0d4c9f2e-7a1b-4c3d-9e8f-112233445566');
    assert.equal(id, '20261206T181507Z-0d4c9f2e');
    assert.ok(ADOPTED_RELEASE < id, 'the adopted platform directory is older than any release');
  });

  void test('a rollback goes to the newest release older than the current one, never to a rolled-back one', () => {
    const releases = [ADOPTED_RELEASE, r(1), `${r(2)}.rolled-back`, r(3), r(4)];
    assert.equal(previousRelease(releases, r(3)), r(1));
    assert.equal(previousRelease(releases, r(4)), r(3));
    assert.equal(previousRelease(releases, r(1)), ADOPTED_RELEASE);
    assert.equal(previousRelease(releases, ADOPTED_RELEASE), undefined);
  });

  void test('pruning keeps the newest releases, the current one and the newest rolled-back one', () => {
    const releases = [
      ADOPTED_RELEASE,
      r(1),
      `${r(2)}.rolled-back`,
      r(3),
      `${r(4)}.rolled-back`,
      r(5),
      `${r(6)}.partial`,
    ];
    assert.deepEqual(releasesToPrune(releases, r(5), 3), [ADOPTED_RELEASE, `${r(2)}.rolled-back`, `${r(6)}.partial`]);
    // A member rolled back to an old release keeps it, although it is not among the newest.
    assert.deepEqual(releasesToPrune(releases, ADOPTED_RELEASE, 2), [r(1), `${r(2)}.rolled-back`, `${r(6)}.partial`]);
  });
});
