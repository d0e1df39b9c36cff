import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { describe, test } from 'node:test';
import { closeAllConnections, verifiedHostKey } from '../../activities/transport/ssh';
import { runRemote } from '../../activities/transport/ssh-command';
import { sshFingerprintOf } from '../../common/ssh-fingerprint';
import { useTestBed } from '../support/testbed';
import { eventually, failure, serverOf, useWorkerEnvironment } from './bed-servers';

useWorkerEnvironment();
const bed = useTestBed({ hosts: [{ roles: [] }, { roles: [] }] });

async function running(host: string, pattern: string): Promise<boolean> {
  const r = await bed().exec(host, ['pgrep', '-f', pattern], { check: false });
  return r.stdout.trim() !== '';
}

describe('runRemote', () => {
  test('runs the argument list exactly as given, feeds stdin, and returns exit code, stdout and stderr', async () => {
    const h1 = serverOf(bed(), 'h1');
    const r = await runRemote(
      h1,
      ['sh', '-c', 'printf "%s|" "$@"; cat; echo oops >&2; exit 3', 'sh', "it's", '$HOME', '', 'a;b'],
      {
        timeoutMs: 10_000,
        stdin: 'from stdin',
        allowExitCodes: [3],
      },
    );
    assert.deepEqual(r, { code: 3, stdout: "it's|$HOME||a;b|from stdin", stderr: 'oops\n' });
  });

  test('a disallowed exit code is a retryable RemoteCommandFailed naming the server and quoting stderr', async () => {
    const h1 = serverOf(bed(), 'h1');
    await assert.rejects(
      runRemote(h1, ['sh', '-c', 'echo "no such thing" >&2; exit 2'], { timeoutMs: 10_000 }),
      failure('RemoteCommandFailed', { nonRetryable: false, message: /server h1: .* exited with 2: no such thing/ }),
    );
  });

  test('reuses one ssh connection per host for every command, and opens it with the pinned key', async () => {
    const h1 = serverOf(bed(), 'h1');
    await Promise.all(Array.from({ length: 20 }, (_, i) => runRemote(h1, ['echo', String(i)], { timeoutMs: 10_000 })));
    const connections = await bed().exec('h1', ['ss', '-Htn', 'state', 'established', '( sport = :22 )']);
    assert.equal(connections.stdout.trim().split('\n').length, 1, connections.stdout);
    assert.equal((await verifiedHostKey(h1)).fingerprint, h1.ssh.hostKey);
    await runRemote(h1, ['true'], { timeoutMs: 10_000 });
    const after = await bed().exec('h1', ['ss', '-Htn', 'state', 'established', '( sport = :22 )']);
    // The peers only: the queue columns (Recv-Q, Send-Q) are whatever is in flight at that moment.
    const peers = (ss: string) =>
      ss
        .trim()
        .split('\n')
        .map((l) => l.trim().split(/\s+/).slice(-2).join(' '));
    assert.deepEqual(
      peers(after.stdout),
      peers(connections.stdout),
      'a later command runs on the same connection (same source port)',
    );
  });

  test('reconnects transparently when the pooled connection has died', async () => {
    const h1 = serverOf(bed(), 'h1');
    await runRemote(h1, ['true'], { timeoutMs: 10_000 });
    await bed().exec('h1', ['pkill', '-f', '^sshd: root'], { check: false });
    const r = await runRemote(h1, ['echo', 'back'], { timeoutMs: 10_000 });
    assert.equal(r.stdout, 'back\n');
  });

  test('closing the connections leaves no socket behind when the server never answers the close', async () => {
    const h1 = serverOf(bed(), 'h1');
    /** This process's TCP sockets to h1's sshd, in any state (FIN-WAIT-2 included), as `ss` lists them. */
    const oursToH1 = () =>
      execFileSync('ss', ['-Htanp', 'dst', `${h1.host}:22`], { encoding: 'utf8' })
        .split('\n')
        .filter((line) => line.includes(`pid=${process.pid},`));
    await closeAllConnections();
    await runRemote(h1, ['true'], { timeoutMs: 10_000 });
    assert.equal(oursToH1().length, 1, 'one pooled connection');
    // A frozen server: its kernel still acknowledges our close, but sshd never closes its side (a VM that was
    // stopped does the same). Without a grace period the half-closed socket would keep the process alive for ever.
    await bed().exec('h1', ['pkill', '-STOP', '-f', '^sshd: root']);
    try {
      await closeAllConnections();
      await eventually(async () => oursToH1().length === 0, 10_000);
    } finally {
      await bed().exec('h1', ['pkill', '-CONT', '-f', '^sshd: root'], { check: false });
    }
  });

  test('a command that overruns its timeout fails retryably and is killed on the server', async () => {
    const h1 = serverOf(bed(), 'h1');
    await assert.rejects(
      runRemote(h1, ['sleep', '31'], { timeoutMs: 1000 }),
      failure('RemoteCommandTimeout', {
        nonRetryable: false,
        message: /server h1: `sleep 31` did not finish within 1 s/,
      }),
    );
    await eventually(async () => !(await running('h1', 'sleep 31')));
  });

  test('cancellation rejects with the signal reason and kills the command on the server', async () => {
    const h1 = serverOf(bed(), 'h1');
    const controller = new AbortController();
    const pending = runRemote(h1, ['sleep', '32'], { timeoutMs: 60_000, signal: controller.signal });
    await eventually(() => running('h1', 'sleep 32'));
    controller.abort(new Error('activity cancelled'));
    await assert.rejects(pending, /activity cancelled/);
    await eventually(async () => !(await running('h1', 'sleep 32')));
  });

  test('a host whose sshd does not answer is a retryable HostUnreachable naming it', async () => {
    const h2 = serverOf(bed(), 'h2');
    await closeAllConnections();
    await bed().stopService('h2', 'ssh');
    try {
      await assert.rejects(
        runRemote(h2, ['true'], { timeoutMs: 10_000 }),
        failure('HostUnreachable', {
          nonRetryable: false,
          message: new RegExp(`server h2: cannot reach root@${h2.host}:22 .*ECONNREFUSED`),
        }),
      );
    } finally {
      await bed().startService('h2', 'ssh');
    }
    assert.equal((await runRemote(h2, ['echo', 'up'], { timeoutMs: 10_000 })).stdout, 'up\n');
  });

  test('a changed host key is a non-retryable HostKeyMismatch naming the host and both fingerprints', async () => {
    const h2 = serverOf(bed(), 'h2');
    await closeAllConnections();
    const { previous, current } = await bed().changeHostKey('h2');
    assert.equal(previous, h2.ssh.hostKey);
    await assert.rejects(
      runRemote(h2, ['true'], { timeoutMs: 10_000 }),
      failure('HostKeyMismatch', {
        nonRetryable: true,
        message: new RegExp(`server h2 .*expected ${escape(previous)} \\(pinned\\), got ${escape(current)}`),
      }),
    );
    // Re-pinned to the new key, the same server is reachable again.
    const repinned = { ...h2, ssh: { ...h2.ssh, hostKey: current } };
    assert.equal((await runRemote(repinned, ['echo', 'ok'], { timeoutMs: 10_000 })).stdout, 'ok\n');
  });

  test('a non-root ssh user runs commands through sudo -n; without the right to, the server is not ready', async () => {
    const aegir = { ...serverOf(bed(), 'h1'), ssh: { ...serverOf(bed(), 'h1').ssh, user: 'aegir' } };
    await assert.rejects(
      runRemote(aegir, ['true'], { timeoutMs: 10_000 }),
      failure('ServerNotReady', {
        nonRetryable: true,
        message: /server h1: aegir may not run commands as root .*NOPASSWD/,
      }),
    );
    await bed().writeFile('h1', '/etc/sudoers.d/sitefleet', 'aegir ALL=(root) NOPASSWD: ALL\n');
    await bed().exec('h1', ['chmod', '0440', '/etc/sudoers.d/sitefleet']);
    assert.equal((await runRemote(aegir, ['id', '-u'], { timeoutMs: 10_000 })).stdout, '0\n');
    const controller = new AbortController();
    const pending = runRemote(aegir, ['sleep', '33'], { timeoutMs: 60_000, signal: controller.signal });
    await eventually(() => running('h1', 'sleep 33'));
    controller.abort(new Error('cancelled'));
    await assert.rejects(pending, /cancelled/);
    await eventually(async () => !(await running('h1', 'sleep 33')));
  });

  test('fingerprints are the ones ssh-keygen -lf prints', async () => {
    const pub = await bed().readFile('h1', '/etc/ssh/ssh_host_ed25519_key.pub');
    const printed = execFileSync('ssh-keygen', ['-lf', '-'], { input: pub, encoding: 'utf8' }).split(' ')[1];
    assert.equal(sshFingerprintOf(Buffer.from(pub.split(' ')[1] as string, 'base64')), printed);
  });
});

function escape(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&');
}
