/**
 * The member-to-member key of a relay, on real test hosts: it runs the receive command and nothing else, only from
 * the sending member, only to a receiver whose host key matches the inventory, and it is gone after the relay.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { after, before, describe, test } from 'node:test';
import { serverInventorySchema, type Platform, type Server } from '../../domain/model';
import {
  openRelayChain,
  relayHopArgv,
  relayKeyMarker,
  relayStagingDir,
  type RelayChain,
} from '../../activities/relay/relay-chain';
import { RECEIVE_COMMAND } from '../../activities/relay/relay-scripts';
import { closeAllConnections } from '../../activities/transport/ssh';
import { useTestBed } from '../support/testbed';

const bed = useTestBed({ hosts: [{ roles: [] }, { roles: [] }, { roles: [] }] });

const platform: Platform = {
  name: 'keyed',
  target: { kind: 'cluster', name: 'c1' },
  source: { type: 'path', path: '/usr/share/wordpress' },
  profile: 'wordpress',
};

describe('the relay key between two members', () => {
  let servers: Map<string, Server>;
  let chain: RelayChain | undefined;
  const server = (name: string): Server => servers.get(name) as Server;

  before(async () => {
    const inventory = serverInventorySchema.parse(JSON.parse(readFileSync(bed().paths.inventoryFile, 'utf8')));
    servers = new Map(inventory.servers.map((s) => [s.name, s]));
    chain = await openRelayChain(platform, [server('h1'), server('h2')], 'keytest', { limitSeconds: 120 });
    assert.deepEqual(
      chain.chain.map((m) => m.server.name),
      ['h1', 'h2'],
    );
  });
  after(async () => {
    await chain?.close();
    await closeAllConnections();
  });

  /**
   * h1's ssh to h2 with the relay key, running `command` instead of the receive command. `extra` options come
   * first, so they win over the relay's own (ssh keeps the first value of an option): the tests switch the
   * client's own safeguards off (ClearAllForwardings) to show that the server refuses too.
   */
  function fromH1(command: string[], extra: string[] = []): string[] {
    const argv = relayHopArgv(server('h1'), server('h2'), platform.name, 'ssh-ed25519');
    const [address] = argv.slice(-2);
    return ['ssh', ...extra, ...argv.slice(1, -2), address as string, ...command];
  }

  const asAegir = (host: string, argv: string[], input = '') =>
    bed().exec(host, argv, { user: 'aegir', check: false, input, timeoutMs: 30_000 });

  test('the authorized_keys entry allows only the receive command, only from h1, without pty or forwarding', async () => {
    const keys = await bed().readFile('h2', '/var/aegir/.ssh/authorized_keys');
    const line = keys.split('\n').find((l) => l.includes('sitefleet-relay:keyed'));
    assert.ok(line, 'h2 authorized the relay key');
    assert.ok(keys.includes(`# BEGIN ${relayKeyMarker('keyed')}`), 'in a managed block');
    assert.match(line, /^restrict,no-pty,no-port-forwarding,no-agent-forwarding,no-X11-forwarding,no-user-rc,/);
    assert.ok(line.includes(`from="${bed().ip('h1')}"`), line);
    assert.ok(line.includes(`command="/bin/sh ${relayStagingDir(server('h2'), 'keyed')}/receive"`), line);
    assert.match(line, /expiry-time="\d{12}"/);
  });

  test('the key delivers a stream with the receive command', async () => {
    const staging = relayStagingDir(server('h2'), 'keyed');
    const reader = asAegir('h2', ['timeout', '20', 'cat', `${staging}/in.fifo`]);
    const sent = await asAegir('h1', fromH1([RECEIVE_COMMAND]), 'hello through the relay\n');
    assert.equal(sent.code, 0, sent.stderr);
    assert.equal((await reader).stdout, 'hello through the relay\n');
  });

  test('the key refuses any other command, a shell, a pty and forwarding', async () => {
    for (const command of [['id'], ['sh', '-c', 'touch /tmp/owned'], [`${RECEIVE_COMMAND};id`], []]) {
      const r = await asAegir('h1', fromH1(command));
      assert.notEqual(r.code, 0, `${command.join(' ') || '(shell)'} was refused`);
      assert.match(r.stderr, /refused/, `${command.join(' ') || '(shell)'}: ${r.stderr}`);
    }
    const owned = await bed().exec('h2', ['test', '-e', '/tmp/owned'], { check: false });
    assert.notEqual(owned.code, 0, 'no command ran on h2');
    const pty = await asAegir('h1', fromH1(['id'], ['-tt']));
    assert.notEqual(pty.code, 0);
    assert.match(pty.stderr, /PTY allocation request failed|refused/);
    const forwarding = ['-o', 'ClearAllForwardings=no', '-o', 'ExitOnForwardFailure=yes'];
    const stdio = await asAegir('h1', fromH1([], [...forwarding, '-W', '127.0.0.1:22']));
    assert.equal(stdio.code, 255, 'no TCP forwarding through h2');
    assert.match(stdio.stderr, /forwarding failed/);
    const remote = await asAegir('h1', fromH1([], [...forwarding, '-N', '-R', '0:127.0.0.1:22']));
    assert.equal(remote.code, 255, 'no remote forwarding');
    assert.match(remote.stderr, /remote port forwarding failed/);
  });

  test('the key is refused from any other host', async () => {
    const staging = relayStagingDir(server('h1'), 'keyed');
    const key = await bed().readFile('h1', `${staging}/key`);
    const knownHosts = await bed().readFile('h1', `${staging}/known_hosts`);
    await bed().exec('h3', ['install', '-d', '-o', 'aegir', '-m', '0700', staging]);
    await bed().writeFile('h3', `${staging}/key`, key, { user: 'aegir' });
    await bed().writeFile('h3', `${staging}/known_hosts`, knownHosts, { user: 'aegir' });
    await bed().exec('h3', ['chmod', '0600', `${staging}/key`]);
    const r = await asAegir('h3', fromH1([RECEIVE_COMMAND]));
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /Permission denied/);
    await bed().exec('h3', ['rm', '-rf', staging]);
  });

  test("h1 refuses h2 when h2's host key is not the one pinned from the inventory", async () => {
    const staging = relayStagingDir(server('h1'), 'keyed');
    const pinned = await bed().readFile('h1', `${staging}/known_hosts`);
    // Pin h3's key under h2's name: h2 now presents a key that is not the pinned one, as an impostor would.
    const lines = pinned.trim().split('\n');
    const h3Key = (lines.find((l) => l.startsWith('sitefleet-relay-h3 ')) ?? '').split(' ').slice(1).join(' ');
    const forged = lines.map((l) => (l.startsWith('sitefleet-relay-h2 ') ? `sitefleet-relay-h2 ${h3Key}` : l));
    await bed().writeFile('h1', `${staging}/known_hosts`, `${forged.join('\n')}\n`, { user: 'aegir' });
    try {
      const r = await asAegir('h1', fromH1([RECEIVE_COMMAND]));
      assert.equal(r.code, 255);
      assert.match(r.stderr, /REMOTE HOST IDENTIFICATION HAS CHANGED|Host key verification failed/);
    } finally {
      await bed().writeFile('h1', `${staging}/known_hosts`, pinned, { user: 'aegir' });
    }
  });

  test('closing the relay removes the key block and the staging directories', async () => {
    const pending = await (chain as RelayChain).close();
    assert.deepEqual(pending, []);
    for (const host of ['h1', 'h2']) {
      const keys = await bed().readFile(host, '/var/aegir/.ssh/authorized_keys');
      assert.ok(!keys.includes('sitefleet:relay'), `${host} has no relay key left`);
      const staged = await bed().exec(host, ['test', '-e', relayStagingDir(server(host), 'keyed')], { check: false });
      assert.notEqual(staged.code, 0, `${host} has no staging directory left`);
    }
  });
});
