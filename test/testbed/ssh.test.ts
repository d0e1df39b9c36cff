import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { promises as fs } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { describe, test } from 'node:test';
import { promisify } from 'node:util';
import { useTestBed } from '../support/testbed';

const run = promisify(execFile);

/** Runs the real ssh client; resolves with its exit code and output instead of throwing. */
async function ssh(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await run('ssh', args, { timeout: 15_000 });
    return { code: 0, stdout, stderr };
  } catch (error) {
    const e = error as { code?: number; stdout?: string; stderr?: string };
    return { code: typeof e.code === 'number' ? e.code : -1, stdout: e.stdout ?? '', stderr: e.stderr ?? '' };
  }
}

void describe('ssh and identity of hosts', () => {
  const bed = useTestBed({ hosts: [{ roles: [] }, { roles: [], aegirUid: 1600, aegirGid: 1601 }] });

  void test('root logs in with the bed key, pinned by the bed known_hosts', async () => {
    await bed().assertRoute('h1');
    const result = await ssh([...bed().sshArgs('h1'), 'hostname; id -un']);
    assert.equal(result.code, 0, result.stderr);
    assert.equal(result.stdout, 'h1\nroot\n');
  });

  void test('aegir logs in with the same key', async () => {
    await bed().assertRoute('h2');
    const result = await ssh([...bed().sshArgs('h2', { user: 'aegir' }), 'id -un; echo $HOME']);
    assert.equal(result.code, 0, result.stderr);
    assert.equal(result.stdout, 'aegir\n/var/aegir\n');
  });

  void test('a connection pinned to a different host key is refused', async () => {
    const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'sitefleet-wrongkey-'));
    try {
      // A known_hosts that pins h2's real key to h1's address: a valid key, but not h1's.
      const h2Key = bed().facts.hosts.find((h) => h.name === 'h2')?.hostPublicKey ?? '';
      const [type, blob] = h2Key.split(' ');
      const knownHostsFile = path.join(dir, 'known_hosts');
      await fs.writeFile(knownHostsFile, `${bed().ip('h1')} ${type} ${blob}\n`);
      await bed().assertRoute('h1');
      const result = await ssh([...bed().sshArgs('h1', { knownHostsFile }), 'true']);
      assert.equal(result.code, 255);
      assert.match(result.stderr, /REMOTE HOST IDENTIFICATION HAS CHANGED/);
      assert.match(result.stderr, /Host key verification failed/);
    } finally {
      await fs.rm(dir, { recursive: true, force: true });
    }
  });

  void test('sshd accepts keys only', async () => {
    await bed().assertRoute('h1');
    const result = await ssh([
      '-F', '/dev/null',
      '-o', `UserKnownHostsFile=${bed().facts.knownHostsFile}`,
      '-o', 'StrictHostKeyChecking=yes',
      '-o', 'BatchMode=yes',
      '-o', 'PubkeyAuthentication=no',
      `root@${bed().ip('h1')}`,
      'true',
    ]); // prettier-ignore
    assert.equal(result.code, 255);
    assert.match(result.stderr, /Permission denied \(publickey\)/);
  });

  void test('the aegir uid and gid are per host: 1500 by default, as configured on h2', async () => {
    const ids = async (host: string) => (await bed().exec(host, ['id', 'aegir'])).stdout;
    assert.match(await ids('h1'), /^uid=1500\(aegir\) gid=1500\(aegir\)/);
    assert.match(await ids('h2'), /^uid=1600\(aegir\) gid=1601\(aegir\)/);
    // A file aegir writes on h2 carries h2's numeric ids, as NFS would show them.
    await bed().exec('h2', ['touch', '/var/aegir/made-by-aegir'], { user: 'aegir' });
    const st = await fs.stat(path.join(bed().hosts[1]?.dir ?? '', 'aegir', 'made-by-aegir'));
    assert.deepEqual([st.uid, st.gid], [1600, 1601]);
  });

  void test('each host has its own hostname, process tree and private /etc, and no route off the bed subnet', async () => {
    const init = await bed().exec('h1', ['cat', '/proc/1/cmdline']);
    assert.match(init.stdout, /host-init\.sh/);
    await bed().exec('h1', ['sh', '-c', 'echo only-on-h1 > /etc/sitefleet-marker']);
    const onH2 = await bed().exec('h2', ['test', '-e', '/etc/sitefleet-marker'], { check: false });
    assert.equal(onH2.code, 1);
    await assert.rejects(fs.access('/etc/sitefleet-marker'));

    const routes = await bed().exec('h1', ['ip', '-4', 'route', 'show']);
    assert.doesNotMatch(routes.stdout, /default/);
    const outside = await bed().exec('h1', ['ip', 'route', 'get', '192.0.2.1'], { check: false });
    assert.notEqual(outside.code, 0);
    assert.match(outside.stderr, /unreachable/i);
  });
});
