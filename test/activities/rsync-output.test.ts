import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { ITEMIZED_CAP, isItemizedLine, parseRsyncOutput } from '../../activities/transport/rsync-output';
import { assertGolden, readGolden } from './golden';

// The inputs are real `rsync --itemize-changes --stats` output of rsync 3.x (see test/golden/rsync/).
function summaryOf(input: string, dryRun: boolean): string {
  return `${JSON.stringify(parseRsyncOutput(readGolden(`rsync/${input}.stdout`), dryRun), null, 2)}\n`;
}

describe('parseRsyncOutput', () => {
  test('a first sync counts every created entry and caps the itemized list', () => {
    const summary = parseRsyncOutput(readGolden('rsync/first-sync.stdout'), false);
    assert.equal(summary.itemized.length, ITEMIZED_CAP);
    assert.equal(summary.itemizedTruncated, true);
    assert.equal(summary.created, summary.filesChanged);
    assertGolden('rsync/first-sync.summary.json', summaryOf('first-sync', false));
  });

  test('a no-op sync reports no change but the bytes of the file list', () => {
    const summary = parseRsyncOutput(readGolden('rsync/no-op.stdout'), false);
    assert.equal(summary.filesChanged, 0);
    assert.ok(summary.bytesSent > 0);
    assertGolden('rsync/no-op.summary.json', summaryOf('no-op', false));
  });

  test('a dry run lists drift: content, missing, stray and permission changes', () => {
    const summary = parseRsyncOutput(readGolden('rsync/drift-dry-run.stdout'), true);
    assert.deepEqual(summary.itemized, [
      '*deleting   stray.php',
      '>f.s....... index.php',
      '>f+++++++++ big/f7.txt',
      '.f...p..... big/f8.txt',
    ]);
    assert.equal(summary.deleted, 1);
    assert.equal(summary.created, 1);
    assertGolden('rsync/drift-dry-run.summary.json', summaryOf('drift-dry-run', true));
  });

  test('numbers with thousands separators are read whole', () => {
    const summary = parseRsyncOutput(readGolden('rsync/repair-human-readable.stdout'), false);
    assert.equal(summary.totalFileSize, 3000507);
    assert.equal(summary.bytesSent, 2834);
  });

  test('only itemized lines count as changes', () => {
    assert.equal(isItemizedLine('cL+++++++++ link.php -> index.php'), true);
    assert.equal(isItemizedLine('*deleting   old/'), true);
    assert.equal(isItemizedLine('.d..t...... ./'), true);
    assert.equal(isItemizedLine('Number of files: 155 (reg: 152, dir: 2, link: 1)'), false);
    assert.equal(isItemizedLine('sent 2,834 bytes  received 82 bytes  5,832.00 bytes/sec'), false);
    assert.equal(isItemizedLine(''), false);
  });
});
