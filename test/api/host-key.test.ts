import assert from 'node:assert/strict';
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { createServer, connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { fetchHostKey } from '../../api/host-key';
import { runCli } from '../../cli/program';
import { FAKE_KEY, startHarness, type Harness } from './harness';

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as { port: number };
      srv.close(() => resolve(port));
    });
  });
}

async function waitForPort(port: number, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const ok = await new Promise<boolean>((resolve) => {
      const s = connect(port, '127.0.0.1');
      s.once('connect', () => {
        s.destroy();
        resolve(true);
      });
      s.once('error', () => resolve(false));
    });
    if (ok) return;
    if (Date.now() > deadline) throw new Error(`nothing listens on 127.0.0.1:${port}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** A throwaway sshd on loopback with its own host key; returns the key's fingerprint as ssh-keygen prints it. */
async function startSshd(dir: string, type: 'ed25519' | 'ecdsa' | 'rsa') {
  const key = join(dir, `host_${type}`);
  execFileSync('ssh-keygen', ['-q', '-t', type, '-f', key, '-N', '', '-C', 'sitefleet-test']);
  const fingerprint = execFileSync('ssh-keygen', ['-l', '-E', 'sha256', '-f', `${key}.pub`], {
    encoding: 'utf8',
  }).split(' ')[1]!;
  const port = await freePort();
  mkdirSync('/run/sshd', { recursive: true, mode: 0o755 }); // sshd's privilege separation directory
  const proc: ChildProcess = spawn(
    '/usr/sbin/sshd',
    ['-D', '-e', '-p', String(port), '-o', 'ListenAddress=127.0.0.1', '-h', key, '-f', '/dev/null'],
    { stdio: 'ignore' },
  );
  await waitForPort(port);
  return { port, fingerprint, proc };
}

void describe('ssh host key pinning', () => {
  let h: Harness;
  let dir: string;
  const sshds: Awaited<ReturnType<typeof startSshd>>[] = [];

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'sitefleet-sshd-'));
    h = await startHarness();
    for (const type of ['ed25519', 'ecdsa', 'rsa'] as const) sshds.push(await startSshd(dir, type));
  });
  after(async () => {
    for (const s of sshds) s.proc.kill('SIGTERM');
    await h?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  void test('reads the same SHA256 fingerprint ssh-keygen prints, for ed25519, ecdsa and rsa host keys', async () => {
    for (const s of sshds) {
      const key = await fetchHostKey('127.0.0.1', s.port);
      assert.equal(key.fingerprint, s.fingerprint);
      assert.match(key.fingerprint, /^SHA256:[A-Za-z0-9+/]{43}$/);
    }
  });

  void test('registering a server without a host key pins the key the server offers', async () => {
    const [ed] = sshds;
    const res = await h.request('POST', '/v1/servers', {
      name: 'scanned',
      host: '127.0.0.1',
      ssh: { port: ed!.port },
      http: { type: 'nginx' },
    });
    assert.equal(res.status, 201, JSON.stringify(res.body));
    assert.equal(res.body.ssh.hostKey, ed!.fingerprint);
    assert.equal((await h.store.get('server', 'scanned'))?.ssh.hostKey, ed!.fingerprint);
  });

  void test('a host key given in the request is stored as given, without contacting the server', async () => {
    const [ed] = sshds;
    const res = await h.request('POST', '/v1/servers', {
      name: 'given',
      host: '127.0.0.1',
      ssh: { port: ed!.port, hostKey: FAKE_KEY },
    });
    assert.equal(res.status, 201);
    assert.equal(res.body.ssh.hostKey, FAKE_KEY);
  });

  void test('moving a server to another address without a host key pins the new key', async () => {
    const [, ecdsa] = sshds;
    const res = await h.request('PUT', '/v1/servers/scanned', {
      name: 'scanned',
      host: '127.0.0.1',
      ssh: { port: ecdsa!.port },
      http: { type: 'nginx' },
    });
    assert.equal(res.status, 200, JSON.stringify(res.body));
    assert.equal(res.body.ssh.hostKey, ecdsa!.fingerprint);
  });

  void test('an unreachable server is refused with 502 and a hint, and nothing is stored', async () => {
    const before = await h.store.dump();
    const port = await freePort();
    const res = await h.request('POST', '/v1/servers', { name: 'down', host: '127.0.0.1', ssh: { port } });
    assert.equal(res.status, 502);
    assert.match(res.body.error, new RegExp(`could not read the ssh host key of 127.0.0.1:${port}: .*ECONNREFUSED`));
    assert.match(res.body.error, /give ssh.hostKey yourself/);
    assert.deepEqual(await h.store.dump(), before);
  });

  void test('a duplicate name is refused before the server is contacted', async () => {
    const res = await h.request('POST', '/v1/servers', { name: 'scanned', host: '127.0.0.1', ssh: { port: 1 } });
    assert.equal(res.status, 409);
    assert.match(res.body.error, /already exists/);
  });

  void test('server repin shows the pinned and the offered key, refuses without --yes off a terminal, pins with it', async () => {
    const [sshd] = sshds;
    const name = 'repin1';
    const stale = { name, host: '127.0.0.1', ssh: { port: sshd!.port, hostKey: FAKE_KEY } };
    assert.equal((await h.request('POST', '/v1/servers', stale)).status, 201);
    const report = await h.request('GET', `/v1/servers/${name}/host-key`);
    assert.equal(report.status, 200);
    assert.deepEqual(
      { pinned: report.body.pinned, offered: report.body.offered, changed: report.body.changed },
      { pinned: FAKE_KEY, offered: sshd!.fingerprint, changed: true },
    );
    const cli = async (args: string[]) => {
      const lines: string[] = [];
      const env = { SITEFLEET_API_URL: h.url, SITEFLEET_TOKEN: h.token };
      const code = await runCli(args, { out: (l) => lines.push(l), err: (l) => lines.push(l), env, isTTY: false });
      return { code, text: lines.join('\n') };
    };
    const asked = await cli(['server', 'repin', name]);
    assert.equal(asked.code, 2);
    assert.match(asked.text, new RegExp(`pinned: +${FAKE_KEY}`));
    assert.ok(asked.text.includes(`offered: ${sshd!.fingerprint} (ssh-ed25519)`), asked.text);
    assert.match(asked.text, /rerun with --yes/);
    assert.equal((await h.store.get('server', name))!.ssh.hostKey, FAKE_KEY);

    const pinned = await cli(['server', 'repin', name, '--yes']);
    assert.equal(pinned.code, 0, pinned.text);
    assert.equal((await h.store.get('server', name))!.ssh.hostKey, sshd!.fingerprint);
    const again = await cli(['server', 'repin', name]);
    assert.equal(again.code, 0);
    assert.match(again.text, /offers the pinned key: nothing to change/);
  });
});
