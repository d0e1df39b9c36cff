/**
 * The relay's data path on this machine, without hosts: the manifest, the tar stream, the node's unpacking and the
 * verify-and-switch script, on a source full of awkward names. The result must be what rsync with the push's
 * filters gives; a tree that is not what the controller sent must never be switched in.
 */
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, promises as fs } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { after, before, describe, test } from 'node:test';
import {
  describeSource,
  expectedRecords,
  hashManifest,
  platformFilterArgs,
  RELAY_CHMOD,
  tarFileList,
  type SourceManifest,
} from '../../activities/relay/relay-manifest';
import { NODE_SCRIPT, VERIFY_AND_SWITCH_SCRIPT, VERIFY_FAILED_EXIT } from '../../activities/relay/relay-scripts';
import { digestTool } from '../../activities/relay/relay';
import { relayTarArgv, type RelayCompression } from '../../activities/relay/relay-stream';

const work = mkdtempSync(join(tmpdir(), 'sitefleet-relay-data-'));
const source = join(work, 'source');
const platforms = join(work, 'platforms');
const live = join(platforms, 'wp');
const staging = join(platforms, '.sitefleet-relay-wp');

function sh(script: string, args: string[], input?: Buffer): { code: number | null; stdout: string; stderr: string } {
  const r = spawnSync('sh', ['-c', script, 'test', ...args], { input, encoding: 'buffer' });
  return { code: r.status, stdout: r.stdout.toString('utf8'), stderr: r.stderr.toString('utf8') };
}

/** A source with what platforms contain and what trips tools up. */
async function makeSource(): Promise<void> {
  const files: Record<string, string> = {
    'index.php': '<?php echo 1;',
    'wp-config.php': 'the source copy, never pushed',
    'with space.php': 'a',
    'new\nline.php': 'b',
    'back\\slash.php': 'c',
    'lit\\#101.txt': 'd',
    'ünïcode.php': 'e',
    '-dash.php': 'f',
    'sites/README.txt': 'sites',
    'sites/all/modules/m.php': 'module',
    'sites/all/files/upload.jpg': 'not pushed',
    'sites/example.com/settings.php': 'not pushed',
    '.git/HEAD': 'not pushed',
    'deep/a/b/c/d/e/f/g/h/i/j/k/l/m/n/o/p/q/r/s/t/u/v/w/x/y/z/a-very-long-file-name-beyond-one-hundred-bytes.php':
      'long',
  };
  for (const [path, content] of Object.entries(files)) {
    await fs.mkdir(join(source, path, '..'), { recursive: true });
    await fs.writeFile(join(source, path), content);
  }
  await fs.chmod(join(source, 'index.php'), 0o600);
  await fs.writeFile(join(source, 'run.sh'), '#!/bin/sh\n', { mode: 0o775 });
  await fs.symlink('/etc/wordpress/htaccess', join(source, '.htaccess'));
  await fs.symlink('../index.php', join(source, 'deep/link.php'));
  await fs.mkdir(join(source, 'empty'));
  await fs.writeFile(join(source, 'big.bin'), Buffer.alloc(3 * 1024 * 1024, 7));
}

let manifest: SourceManifest;

/**
 * Streams the manifest's tar into a fresh staging tree through the node script: as the last member, or as a
 * middle one passing the stream on to `next` (any command reading stdin). Resolves with the node's result line.
 */
async function unpack(into: string, compression: RelayCompression = 'none', next: string[] = []): Promise<string> {
  await fs.rm(into, { recursive: true, force: true });
  await fs.mkdir(join(into, 'tree'), { recursive: true, mode: 0o700 });
  if (next.length > 0) spawnSync('mkfifo', [join(into, 'unpack.fifo')]);
  return new Promise<string>((resolve, reject) => {
    const tar = spawn('tar', relayTarArgv(source, compression), { stdio: ['pipe', 'pipe', 'inherit'] });
    const node = spawn('sh', ['-c', NODE_SCRIPT, 'node', into, 'stdin', compression, ...next], {
      stdio: ['pipe', 'pipe', 'inherit'],
    });
    tar.stdout.pipe(node.stdin);
    tar.stdin.end(tarFileList(manifest));
    let out = '';
    node.stdout.on('data', (c: Buffer) => (out += c.toString()));
    node.on('close', () => (/tar=0/.test(out) ? resolve(out.trim()) : reject(new Error(`node: ${out}`))));
  });
}

function verifyAndSwitch(digest = digestTool(manifest)): { code: number | null; stdout: string; stderr: string } {
  return sh(
    VERIFY_AND_SWITCH_SCRIPT,
    [staging, live, 'root', digest, ...platformFilterArgs('wordpress')],
    gzipSync(expectedRecords(manifest)),
  );
}

/** What `rsync` with the push's filters would still change in `live`: nothing when the relay did a push's job. */
function rsyncDrift(): string[] {
  const r = spawnSync(
    'rsync',
    [
      '-a',
      '--delete',
      '--dry-run',
      '--itemize-changes',
      '--omit-dir-times',
      `--chmod=${RELAY_CHMOD}`,
      '--chown=root:root',
      ...platformFilterArgs('wordpress'),
      `${source}/`,
      `${live}/`,
    ],
    { encoding: 'utf8' },
  );
  assert.equal(r.status, 0, r.stderr);
  return r.stdout.split('\n').filter((l) => l.trim() !== '');
}

describe('relay data path', () => {
  before(async () => {
    await makeSource();
    await fs.mkdir(platforms);
    manifest = await describeSource(source, 'wordpress');
    await hashManifest(manifest);
  });
  after(() => fs.rm(work, { recursive: true, force: true }));

  test("the manifest holds what the push sends, chosen by the push's own filters", () => {
    const paths = manifest.entries.map((e) => Buffer.from(e.path, 'latin1').toString('utf8'));
    for (const sent of [
      '',
      'index.php',
      'new\nline.php',
      'lit\\#101.txt',
      'ünïcode.php',
      'sites/README.txt',
      '.htaccess',
      'empty',
    ]) {
      assert.ok(paths.includes(sent), `${JSON.stringify(sent)} is sent`);
    }
    for (const kept of ['wp-config.php', '.git', 'sites/all/files', 'sites/example.com']) {
      assert.ok(!paths.includes(kept), `${kept} is not sent`);
    }
    const index = manifest.entries.find((e) => e.path === 'index.php');
    assert.equal(index?.mode, 0o644, 'u+rwX,go+rX,go-w applied');
    assert.equal(manifest.entries.find((e) => e.path === 'run.sh')?.mode, 0o755);
    assert.match(index?.sha256 ?? '', /^[0-9a-f]{64}$/);
  });

  test('a new platform, streamed with zstd: verified, switched in by one rename, equal to an rsync push', async () => {
    await unpack(staging, 'zstd');
    const r = verifyAndSwitch();
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /switched=rename/);
    assert.deepEqual(rsyncDrift(), []);
    await assert.rejects(fs.access(staging), 'the staging directory is gone');
  });

  test('a middle member unpacks what it passes on, and goes on unpacking when the next member goes away', async () => {
    const forwarded = join(work, 'forwarded.tar');
    const passOn = ['sh', '-c', 'cat > "$1"', 'next', forwarded];
    const result = await unpack(staging, 'none', passOn);
    assert.match(result, /tar=0 tee=0 next=0/);
    const stream = spawnSync('tar', relayTarArgv(source), { input: tarFileList(manifest), maxBuffer: 1 << 30 }).stdout;
    assert.ok((await fs.readFile(forwarded)).equals(stream), 'the next member got the stream byte for byte');
    assert.equal(verifyAndSwitch().code, 0, 'and this member got all of it');
    await fs.rm(live, { recursive: true });
    // The next member reads 1000 bytes and dies: this member still unpacks everything.
    const gone = await unpack(staging, 'none', ['head', '-c', '1000']);
    assert.match(gone, /tar=0/);
    const r = verifyAndSwitch();
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(rsyncDrift(), []);
  });

  test('an update: sites, uploads and wp-config.php stay, the rest becomes the source, by one exchange', async () => {
    await fs.mkdir(join(live, 'sites/blog.example.com/files'), { recursive: true });
    await fs.writeFile(join(live, 'sites/blog.example.com/files/photo.jpg'), 'upload');
    await fs.mkdir(join(live, 'sites/all/files'), { recursive: true });
    await fs.writeFile(join(live, 'sites/all/files/shared.jpg'), 'shared upload');
    await fs.symlink('blog.example.com', join(live, 'sites/www.blog.example.com'));
    await fs.writeFile(join(live, 'wp-config.php'), 'the dispatcher');
    await fs.writeFile(join(live, 'stale.php'), 'gone from the source');
    await fs.writeFile(join(live, 'index.php'), 'edited on the server');
    const before = (await fs.stat(join(live, 'sites/blog.example.com/files/photo.jpg'))).ino;
    await unpack(staging);
    const r = verifyAndSwitch();
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /switched=exchange/);
    assert.deepEqual(rsyncDrift(), []);
    assert.equal(await fs.readFile(join(live, 'wp-config.php'), 'utf8'), 'the dispatcher');
    assert.equal(await fs.readFile(join(live, 'sites/all/files/shared.jpg'), 'utf8'), 'shared upload');
    assert.equal(await fs.readlink(join(live, 'sites/www.blog.example.com')), 'blog.example.com');
    const photo = join(live, 'sites/blog.example.com/files/photo.jpg');
    assert.equal((await fs.stat(photo)).ino, before, 'uploads are carried over as hard links, not copied');
    await assert.rejects(fs.access(join(live, 'stale.php')));
    await assert.rejects(fs.access(staging));
  });

  test('a file whose content differs from the manifest (same size) is refused; the platform is untouched', async () => {
    await unpack(staging);
    const index = join(staging, 'tree/index.php');
    const { mtime } = await fs.stat(index);
    await fs.writeFile(index, '<?php echo 2;');
    await fs.utimes(index, mtime, mtime);
    const stamp = spawnSync('find', [live, '-printf', '%p %i %s\n'], { encoding: 'utf8' }).stdout;
    for (const digest of ['openssl', 'sha256sum'] as const) {
      const r = verifyAndSwitch(digest);
      assert.equal(r.code, VERIFY_FAILED_EXIT, digest);
      assert.match(r.stderr, /differs from their sha256 in the manifest/, digest);
    }
    assert.equal(spawnSync('find', [live, '-printf', '%p %i %s\n'], { encoding: 'utf8' }).stdout, stamp);
  });

  test('a missing, an extra or a truncated file is refused', async () => {
    for (const [what, spoil] of [
      ['missing', (tree: string) => fs.rm(join(tree, 'with space.php'))],
      ['extra', (tree: string) => fs.writeFile(join(tree, 'backdoor.php'), '<?php')],
      ['truncated', (tree: string) => fs.truncate(join(tree, 'big.bin'), 1024)],
    ] as const) {
      await unpack(staging);
      await spoil(join(staging, 'tree'));
      const r = verifyAndSwitch();
      assert.equal(r.code, VERIFY_FAILED_EXIT, `${what}: ${r.stderr}`);
      assert.match(r.stderr, /differs from the manifest/, what);
    }
    await fs.rm(staging, { recursive: true, force: true });
    assert.deepEqual(rsyncDrift(), [], 'the live platform is still the last good one');
  });
});
