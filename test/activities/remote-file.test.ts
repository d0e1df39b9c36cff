import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { ensureManagedBlock } from '../../activities/transport/managed-block';
import {
  editRemoteFile,
  ensureRemoteFiles,
  readRemoteFile,
  removeRemoteFile,
  writeRemoteFile,
} from '../../activities/transport/remote-file';
import { useTestBed } from '../support/testbed';
import { serverOf, useWorkerEnvironment } from './bed-servers';

useWorkerEnvironment();
const bed = useTestBed({ hosts: [{ roles: [] }] });

async function stat(path: string): Promise<string> {
  return (await bed().exec('h1', ['stat', '-c', '%U:%G:%a', path])).stdout.trim();
}

describe('remote files', () => {
  test('writes atomically, creating parents, and returns null as the previous content of a new file', async () => {
    const h1 = serverOf(bed(), 'h1');
    const path = '/var/aegir/test/new/a.conf';
    const result = await writeRemoteFile(h1, path, "one\nit's $HOME\n", { owner: 'aegir', mode: '0640' });
    assert.deepEqual(result, { previous: null, changed: true });
    assert.equal(await bed().readFile('h1', path), "one\nit's $HOME\n");
    assert.equal(await stat(path), 'aegir:root:640');
    const leftovers = await bed().exec('h1', ['find', '/var/aegir/test/new', '-name', '.sitefleet.*']);
    assert.equal(leftovers.stdout, '', 'no temp file is left behind');
  });

  test('writing the same content twice changes nothing the second time; new content returns the old', async () => {
    const h1 = serverOf(bed(), 'h1');
    const path = '/var/aegir/test/twice.conf';
    await writeRemoteFile(h1, path, 'v1\n');
    const before = await bed().exec('h1', ['stat', '-c', '%i %Y', path]);
    assert.deepEqual(await writeRemoteFile(h1, path, 'v1\n'), { previous: 'v1\n', changed: false });
    assert.equal(
      (await bed().exec('h1', ['stat', '-c', '%i %Y', path])).stdout,
      before.stdout,
      'same inode: untouched',
    );
    assert.deepEqual(await writeRemoteFile(h1, path, 'v2\n'), { previous: 'v1\n', changed: true });
    assert.equal(await bed().readFile('h1', path), 'v2\n');
  });

  test('ensureRemoteFiles checks several files in one go and rewrites only those whose content, owner or mode differ', async () => {
    const h1 = serverOf(bed(), 'h1');
    const a = '/var/aegir/test/ensure/a.php';
    const b = '/var/aegir/test/ensure/b.php';
    const files = [
      { path: a, content: '<?php // a\n', owner: 'aegir', mode: '0644' },
      { path: b, content: '<?php // b\n', owner: 'aegir', mode: '0644' },
    ];
    assert.deepEqual(await ensureRemoteFiles(h1, files), [true, true], 'both created');
    const before = await bed().exec('h1', ['stat', '-c', '%i %Y', a, b]);
    assert.deepEqual(await ensureRemoteFiles(h1, files), [false, false], 'nothing to do');
    assert.equal((await bed().exec('h1', ['stat', '-c', '%i %Y', a, b])).stdout, before.stdout, 'untouched');

    await bed().exec('h1', ['chmod', '0666', a]);
    await bed().exec('h1', ['sh', '-c', 'echo tampered >> "$1"', 'x', b]);
    assert.deepEqual(await ensureRemoteFiles(h1, files), [true, true], 'the mode of a, the content of b');
    assert.equal(await stat(a), 'aegir:root:644');
    assert.equal(await bed().readFile('h1', b), '<?php // b\n');

    await bed().exec('h1', ['chown', 'root', b]);
    await bed().exec('h1', ['sh', '-c', 'rm "$1" && ln -s /etc/passwd "$1"', 'x', a]);
    assert.deepEqual(await ensureRemoteFiles(h1, files), [true, true], 'a link in place of a, the owner of b');
    assert.equal((await bed().exec('h1', ['stat', '-c', '%F', a])).stdout.trim(), 'regular file');
    assert.equal(await stat(b), 'aegir:root:644');
  });

  test('keeps the owner and mode of the file it replaces unless told otherwise', async () => {
    const h1 = serverOf(bed(), 'h1');
    const path = '/var/aegir/test/keep.conf';
    await bed().exec('h1', ['sh', '-c', `echo old > ${path} && chown aegir:www-data ${path} && chmod 0604 ${path}`]);
    await writeRemoteFile(h1, path, 'new\n');
    assert.equal(await stat(path), 'aegir:www-data:604');
    assert.deepEqual(await writeRemoteFile(h1, path, 'new\n', { mode: '0644' }), { previous: 'new\n', changed: true });
    assert.equal(await stat(path), 'aegir:www-data:644');
  });

  test('removal returns the previous content, and removing again is a no-op', async () => {
    const h1 = serverOf(bed(), 'h1');
    const path = '/var/aegir/test/gone.conf';
    await writeRemoteFile(h1, path, 'bye\n');
    assert.deepEqual(await removeRemoteFile(h1, path), { previous: 'bye\n', removed: true });
    assert.deepEqual(await removeRemoteFile(h1, path), { previous: null, removed: false });
    assert.equal(await readRemoteFile(h1, path), null);
  });

  test('concurrent edits of one shared file keep every edit', async () => {
    const h1 = serverOf(bed(), 'h1');
    const path = '/var/aegir/test/fstab';
    await writeRemoteFile(h1, path, '# fstab\n');
    await Promise.all(
      ['alpha', 'beta', 'gamma', 'delta'].map((pack) =>
        editRemoteFile(h1, path, (text) => ensureManagedBlock(text ?? '', `sitefleet:pack:${pack}`, `line of ${pack}`)),
      ),
    );
    const text = await bed().readFile('h1', path);
    for (const pack of ['alpha', 'beta', 'gamma', 'delta']) assert.match(text, new RegExp(`line of ${pack}`));
    // Another writer between read and write: the compare-and-swap notices and the edit is re-applied on top.
    let raced = false;
    await editRemoteFile(h1, path, (current) => {
      if (!raced) {
        raced = true;
        void bed().exec('h1', ['sh', '-c', `echo '# added by someone else' >> ${path}`]);
      }
      return ensureManagedBlock(current ?? '', 'sitefleet:pack:epsilon', 'line of epsilon');
    });
    await new Promise((r) => setTimeout(r, 200));
    const after = await bed().readFile('h1', path);
    assert.match(after, /line of epsilon/);
    assert.match(after, /# added by someone else/);
  });

  test('refuses a relative path or one with shell characters before running anything', async () => {
    const h1 = serverOf(bed(), 'h1');
    await assert.rejects(writeRemoteFile(h1, 'relative/path', 'x'), /remote file path/);
    await assert.rejects(writeRemoteFile(h1, '/tmp/a b;rm -rf /', 'x'), /remote file path/);
  });
});
