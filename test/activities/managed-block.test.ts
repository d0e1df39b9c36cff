import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { ensureManagedBlock, readManagedBlock, removeManagedBlock } from '../../activities/transport/managed-block';
import { exportBlock, ganeshaExportId } from '../../activities/nfs-export';
import { packMarker } from '../../activities/nfs-share';
import { uploadsShareName } from '../../domain/paths';
import { renderFstabNfs, renderFstabSshfs } from '../../activities/render';
import { serverSchema } from '../../domain/model';
import type { PackShare } from '../../domain/operations';
import { assertGolden, readGolden } from './golden';

const MARKER = 'sitefleet:pack:alpha';
const NFS_LINE = renderFstabNfs({
  shareHost: '10.0.0.11',
  exportPath: '/var/aegir/platforms',
  mountPoint: '/var/aegir/platforms',
});

const share: PackShare = {
  server: serverSchema.parse({
    name: 'master',
    host: '10.0.0.11',
    ssh: { hostKey: `SHA256:${'A'.repeat(43)}` },
    nfs: { flavour: 'ganesha' },
  }),
  exportPath: '/var/aegir/platforms',
  clients: '10.0.0.0/24',
  clientFlavour: 'kernel',
};

describe('ensureManagedBlock', () => {
  test('appends the block to an fstab that has none, leaving every other line as it was', () => {
    assertGolden(
      'managed-block/fstab-added.expected',
      ensureManagedBlock(readGolden('managed-block/fstab.input'), MARKER, NFS_LINE),
    );
  });

  test('is idempotent: adding the same block twice gives the file of adding it once', () => {
    const once = ensureManagedBlock(readGolden('managed-block/fstab.input'), MARKER, NFS_LINE);
    assert.equal(ensureManagedBlock(once, MARKER, NFS_LINE), once);
  });

  test('updates the block in place, where it is, when its content changes', () => {
    const sshfs = renderFstabSshfs({
      remoteUser: 'aegir',
      shareHost: '10.0.0.11',
      sshPort: 22,
      exportPath: '/var/aegir/platforms',
      mountPoint: '/var/aegir/platforms',
      identityFile: '/root/.ssh/sitefleet-pack-alpha',
      knownHostsFile: '/root/.ssh/sitefleet-known_hosts',
    });
    const once = ensureManagedBlock(readGolden('managed-block/fstab.input'), MARKER, NFS_LINE);
    const withOther =
      ensureManagedBlock(once, 'sitefleet:pack:beta', 'beta line') + '/dev/sdb1 /srv ext4 defaults 0 2\n';
    assertGolden('managed-block/fstab-updated.expected', ensureManagedBlock(withOther, MARKER, sshfs));
  });

  test('updates an exports line in the middle of the file without moving it', () => {
    assertGolden(
      'managed-block/exports-updated.expected',
      ensureManagedBlock(
        readGolden('managed-block/exports.input'),
        MARKER,
        exportBlock('kernel', share, 'alpha', '', ['10.0.1.12', '10.0.1.13']),
      ),
    );
  });

  test('keeps one block when a file has the same block twice', () => {
    assertGolden(
      'managed-block/duplicated.expected',
      ensureManagedBlock(readGolden('managed-block/duplicated.input'), MARKER, 'new'),
    );
  });

  test('adds a ganesha EXPORT block with an Export_Id no other export uses', () => {
    const config = readGolden('managed-block/ganesha.input');
    assertGolden(
      'managed-block/ganesha-added.expected',
      ensureManagedBlock(config, MARKER, exportBlock('ganesha', share, 'alpha', config)),
    );
  });

  test('handles an empty file and a file without a final newline', () => {
    assert.equal(ensureManagedBlock('', MARKER, 'x'), `# BEGIN ${MARKER}\nx\n# END ${MARKER}\n`);
    assert.equal(ensureManagedBlock('a', MARKER, 'x\n'), `a\n# BEGIN ${MARKER}\nx\n# END ${MARKER}\n`);
  });

  test('takes the comment leader of the file syntax', () => {
    assert.equal(ensureManagedBlock('', 'm', 'x', { comment: ';' }), '; BEGIN m\nx\n; END m\n');
  });

  test('refuses to touch a file whose block is not closed, or a block that contains its own fence', () => {
    const broken = `a\n# BEGIN ${MARKER}\nb\n`;
    assert.throws(() => ensureManagedBlock(broken, MARKER, 'x'), /never ends/);
    assert.throws(() => removeManagedBlock(`# END ${MARKER}\n`, MARKER), /without a BEGIN/);
    assert.throws(() => ensureManagedBlock('', MARKER, `# END ${MARKER}`), /own BEGIN or END/);
    assert.throws(() => ensureManagedBlock('', 'bad marker', 'x'), /marker/);
  });
});

describe('removeManagedBlock', () => {
  test('removes the block and nothing else', () => {
    assertGolden(
      'managed-block/exports-removed.expected',
      removeManagedBlock(readGolden('managed-block/exports.input'), MARKER),
    );
  });

  test('undoes ensureManagedBlock exactly, and is idempotent', () => {
    const original = readGolden('managed-block/fstab.input');
    const removed = removeManagedBlock(ensureManagedBlock(original, MARKER, NFS_LINE), MARKER);
    assert.equal(removed, original);
    assert.equal(removeManagedBlock(removed, MARKER), original);
  });

  test('leaves other markers alone', () => {
    const text = ensureManagedBlock(
      ensureManagedBlock('', 'sitefleet:pack:alpha', 'a'),
      'sitefleet:pack:alpha:h2',
      'b',
    );
    assert.equal(
      removeManagedBlock(text, 'sitefleet:pack:alpha'),
      '# BEGIN sitefleet:pack:alpha:h2\nb\n# END sitefleet:pack:alpha:h2\n',
    );
  });
});

describe('readManagedBlock and ganeshaExportId', () => {
  test('reads the content of a block, or null', () => {
    assert.equal(
      readManagedBlock(readGolden('managed-block/exports.input'), MARKER),
      '/var/aegir/platforms 10.0.0.0/24(rw,sync,no_subtree_check)\n',
    );
    assert.equal(readManagedBlock('nothing\n', MARKER), null);
  });

  test('an export keeps its id across updates, and a new one avoids ids in use', () => {
    const config = readGolden('managed-block/ganesha.input');
    const id = ganeshaExportId(config, 'alpha');
    assert.notEqual(id, 77);
    const added = ensureManagedBlock(config, MARKER, exportBlock('ganesha', share, 'alpha', config));
    assert.equal(ganeshaExportId(added, 'alpha'), id);
    const taken = config.replace('Export_Id = 77', `Export_Id = ${id}`);
    assert.notEqual(ganeshaExportId(taken, 'alpha'), id);
  });
});

describe("a cluster's uploads share and a pack never share a marker", () => {
  test('pack web-uploads and cluster web: two owners, two blocks', () => {
    assert.equal(packMarker(uploadsShareName('web')), 'sitefleet:pack:uploads.web');
    assert.notEqual(packMarker('web-uploads'), packMarker(uploadsShareName('web')));
    const both = ensureManagedBlock(
      ensureManagedBlock('', packMarker('web-uploads'), 'the pack'),
      packMarker(uploadsShareName('web')),
      'the uploads',
    );
    assert.equal(readManagedBlock(both, packMarker('web-uploads')), 'the pack\n');
    assert.equal(readManagedBlock(both, packMarker(uploadsShareName('web'))), 'the uploads\n');
  });
  test('an owner name that is neither a pack nor uploads.CLUSTER is refused, naming the field', () => {
    for (const bad of ['uploads.', 'uploads.web/x', 'Web', 'x.web', '../web']) {
      assert.throws(() => packMarker(bad), /packName/, bad);
    }
  });
});
