import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { promises as fs } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as net from 'node:net';
import { describe, test } from 'node:test';
import { promisify } from 'node:util';
import { serverInventorySchema } from '../../domain/model';
import { BedConflictError, startBed } from '../../testbed';
import { nextBedNameAndSubnet, useTestBed } from '../support/testbed';

const run = promisify(execFile);

/** 'open', 'refused' or 'timeout': how a TCP connect from the controller ends. */
function connectOutcome(ip: string, port: number, timeoutMs = 700): Promise<'open' | 'refused' | 'timeout'> {
  return new Promise((resolve) => {
    const socket = net.connect({ host: ip, port });
    const done = (outcome: 'open' | 'refused' | 'timeout') => {
      socket.destroy();
      resolve(outcome);
    };
    socket.setTimeout(timeoutMs, () => done('timeout'));
    socket.once('connect', () => done('open'));
    socket.once('error', (e: NodeJS.ErrnoException) => done(e.code === 'ECONNREFUSED' ? 'refused' : 'timeout'));
  });
}

async function sshExitCode(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await run('ssh', args, { timeout: 15_000 });
    return { code: 0, stdout, stderr };
  } catch (error) {
    const e = error as { code?: number; stdout?: string; stderr?: string };
    return { code: typeof e.code === 'number' ? e.code : -1, stdout: e.stdout ?? '', stderr: e.stderr ?? '' };
  }
}

void describe('fault injection', () => {
  const bed = useTestBed({ hosts: [{ roles: ['web-nginx'] }, { roles: ['web-nginx'] }, { roles: ['web-nginx'] }] });

  void test('stopHost ends every process of the host; startHost boots it again with its files kept', async () => {
    await bed().exec('h1', ['sh', '-c', 'echo kept > /var/aegir/survives; echo gone > /tmp/volatile']);
    const pidsBefore = (await run('ip', ['netns', 'pids', bed().host('h1').netns])).stdout.trim().split('\n');
    assert.ok(pidsBefore.length >= 5);

    await bed().assertRoute('h1');
    await bed().stopHost('h1');
    assert.equal(await bed().isRunning(bed().host('h1')), false);
    assert.equal((await run('ip', ['netns', 'pids', bed().host('h1').netns])).stdout.trim(), '');
    assert.equal(await connectOutcome(bed().ip('h1'), 22), 'refused');
    assert.equal(await connectOutcome(bed().ip('h1'), 80), 'refused');
    await assert.rejects(bed().exec('h1', ['true']), /h1 of bed .* is not running/);

    await bed().startHost('h1');
    assert.equal(await bed().readFile('h1', '/var/aegir/survives'), 'kept\n');
    assert.equal((await bed().exec('h1', ['test', '-e', '/tmp/volatile'], { check: false })).code, 1);
    assert.equal((await bed().httpGet('h1', '/')).status, 404);
    const ssh = await sshExitCode([...bed().sshArgs('h1'), 'hostname']);
    assert.equal(ssh.stdout, 'h1\n', ssh.stderr);
  });

  void test('cutLink makes the host unreachable while it keeps running; restoreLink brings it back', async () => {
    await bed().assertRoute('h2');
    await bed().cutLink('h2');
    try {
      assert.equal(await connectOutcome(bed().ip('h2'), 22), 'timeout');
      // Still running: its own processes go on, only the wire is cut.
      const inside = await bed().exec('h2', ['service', 'nginx', 'status']);
      assert.match(inside.stdout, /nginx is running/);
      // Other hosts cannot reach it either.
      const fromH3 = await bed().exec('h3', ['ssh-keyscan', '-T', '1', bed().ip('h2')], { check: false });
      assert.equal(fromH3.stdout, '');
    } finally {
      await bed().restoreLink('h2');
    }
    assert.equal(await connectOutcome(bed().ip('h2'), 22), 'open');
    assert.equal((await bed().httpGet('h2', '/')).status, 404);
  });

  void test('stopService stops one service inside the host and startService starts it again', async () => {
    await bed().assertRoute('h3');
    await bed().stopService('h3', 'nginx');
    assert.equal(await connectOutcome(bed().ip('h3'), 80), 'refused');
    assert.equal(await connectOutcome(bed().ip('h3'), 22), 'open');
    const status = await bed().exec('h3', ['service', 'nginx', 'status'], { check: false });
    assert.notEqual(status.code, 0);

    await bed().startService('h3', 'nginx');
    assert.equal((await bed().httpGet('h3', '/')).status, 404);
    await assert.rejects(bed().stopService('h3', 'postfix'), /has no service "postfix"/);
  });

  void test('changeHostKey makes sshd present a new key, which the pinned inventory refuses', async () => {
    const pinned = serverInventorySchema
      .parse(JSON.parse(await fs.readFile(bed().facts.inventoryFile, 'utf8')))
      .servers.find((s) => s.name === 'h3')?.ssh.hostKey;
    const change = await bed().changeHostKey('h3');
    assert.equal(change.previous, pinned);
    assert.notEqual(change.current, change.previous);

    await bed().assertRoute('h3');
    const refused = await sshExitCode([...bed().sshArgs('h3'), 'true']);
    assert.equal(refused.code, 255);
    assert.match(refused.stderr, new RegExp(`${change.current.replace(/[+/]/g, '\\$&')}`));

    const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'sitefleet-newkey-'));
    try {
      const pub = (await bed().readFile('h3', '/etc/ssh/ssh_host_ed25519_key.pub')).split(' ');
      const knownHostsFile = path.join(dir, 'known_hosts');
      await fs.writeFile(knownHostsFile, `${bed().ip('h3')} ${pub[0]} ${pub[1]}\n`);
      const accepted = await sshExitCode([...bed().sshArgs('h3', { knownHostsFile }), 'hostname']);
      assert.equal(accepted.stdout, 'h3\n', accepted.stderr);
    } finally {
      await fs.rm(dir, { recursive: true, force: true });
    }
  });

  void test('a second bed on a subnet already routed on this machine is refused before it creates anything', async () => {
    const { name } = await nextBedNameAndSubnet();
    await assert.rejects(
      startBed({ name, subnet: bed().plan.subnet, hosts: 1 }),
      (error: unknown) => error instanceof BedConflictError && /already routed/.test(error.message),
    );
    await assert.rejects(fs.stat(path.join(path.dirname(bed().paths.dir), name)));
  });
});
