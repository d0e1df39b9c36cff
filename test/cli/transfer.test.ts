/**
 * Transfer options (parallel rsync or relay; docs/relay.md) from the command line: `--transfer-*` flags on pack
 * and cluster add, `set-transfer` on an existing one, per deployment on `deploy`, and `transfer:` in an apply file.
 */
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { stringify } from 'yaml';
import { runCli } from '../../cli/program';
import { useHarnessWithServers } from '../api/harness';

void describe('sitefleet CLI: transfer options', () => {
  const harness = useHarnessWithServers(['web1', 'web2', 'web3', 'web4']);

  async function cli(args: string[]): Promise<{ code: number; out: string; err: string }> {
    const out: string[] = [];
    const err: string[] = [];
    const code = await runCli(args, {
      out: (l) => out.push(l),
      err: (l) => err.push(l),
      env: {
        SITEFLEET_API_URL: harness().url,
        SITEFLEET_TOKEN: harness().token,
        SITEFLEET_DATA_DIR: harness().dataDir,
      },
      isTTY: false,
    });
    return { code, out: out.join('\n'), err: err.join('\n') };
  }
  const ok = async (args: string[]) => {
    const r = await cli(args);
    assert.equal(r.code, 0, `sitefleet ${args.join(' ')}\n${r.out}\n${r.err}`);
    return r;
  };

  void test('pack and cluster add store the --transfer-* flags', async () => {
    await ok([
      'cluster',
      'add',
      'cl',
      '--members',
      'web1,web2,web3',
      '--transfer-mode',
      'auto',
      '--transfer-uplink-mbit',
      '200',
      '--transfer-member-link-mbit',
      '1000.5',
      '--no-transfer-compress',
    ]);
    assert.deepEqual((await harness().store.get('cluster', 'cl'))?.transfer, {
      mode: 'auto',
      uplinkMbit: 200,
      memberLinkMbit: 1000.5,
      compress: false,
    });
    await ok([
      'pack',
      'add',
      'pk',
      '--master',
      'web4',
      '--clients',
      '10.0.0.0/24',
      '--client-flavour',
      'sshfs',
      '--transfer-mode',
      'relay',
    ]);
    assert.deepEqual((await harness().store.get('pack', 'pk'))?.transfer, { mode: 'relay' });
    await ok(['cluster', 'add', 'plain', '--members', 'web1']);
    assert.equal((await harness().store.get('cluster', 'plain'))?.transfer, undefined);
  });

  void test('set-transfer changes the given fields of an existing cluster, keeps the others, and --clear forgets them', async () => {
    const r = await ok(['cluster', 'set-transfer', 'cl', '--transfer-min-members', '4', '--transfer-compress']);
    assert.match(r.out, /^cluster cl transfer options:$/m);
    assert.match(r.out, /^minMembers: 4$/m);
    assert.deepEqual((await harness().store.get('cluster', 'cl'))?.transfer, {
      mode: 'auto',
      uplinkMbit: 200,
      memberLinkMbit: 1000.5,
      compress: true,
      minMembers: 4,
    });
    assert.deepEqual((await harness().store.get('cluster', 'cl'))?.members, ['web1', 'web2', 'web3']);

    await ok(['pack', 'set-transfer', 'pk', '--clear', '--transfer-mode', 'rsync']);
    assert.deepEqual((await harness().store.get('pack', 'pk'))?.transfer, { mode: 'rsync' });
    await ok(['pack', 'set-transfer', 'pk', '--clear']);
    assert.equal((await harness().store.get('pack', 'pk'))?.transfer, undefined);

    const nothing = await cli(['cluster', 'set-transfer', 'cl']);
    assert.equal(nothing.code, 2);
    assert.match(nothing.err, /needs a --transfer-\* flag or --clear/);
  });

  void test('refused values exit non-zero, naming the field and the rule, and change nothing', async () => {
    const before = await harness().store.dump();
    const zero = await cli(['cluster', 'set-transfer', 'cl', '--transfer-uplink-mbit', '0']);
    assert.equal(zero.code, 1);
    assert.match(zero.err, /^ {2}transfer\.uplinkMbit: must be a positive number of Mbit\/s$/m);
    const one = await cli(['cluster', 'add', 'c9', '--members', 'web1', '--transfer-min-members', '1']);
    assert.equal(one.code, 1);
    assert.match(one.err, /^ {2}transfer\.minMembers: must be at least 2/m);
    const mode = await cli(['cluster', 'set-transfer', 'cl', '--transfer-mode', 'fast']);
    assert.equal(mode.code, 2);
    assert.match(mode.err, /Allowed choices are auto, rsync, relay/);
    const negative = await cli(['cluster', 'set-transfer', 'cl', '--transfer-uplink-mbit', '-5']);
    assert.equal(negative.code, 2);
    assert.deepEqual(await harness().store.dump(), before);
  });

  void test('deploy --transfer-* overrides the stored options for that deployment only', async () => {
    assert.equal(
      (
        await harness().request('POST', '/v1/platforms', {
          name: 'wp',
          target: { kind: 'cluster', name: 'cl' },
          source: { type: 'git', url: 'https://example.com/wp.git' },
          profile: 'wordpress',
        })
      ).status,
      201,
    );
    const stored = (await harness().store.get('cluster', 'cl'))?.transfer;
    const r = await ok(['--json', 'deploy', 'wp', '--transfer-mode', 'relay', '--no-wait']);
    const started = JSON.parse(r.out) as { operationId: string; runId: string };
    const handle = harness().env.client.workflow.getHandle(started.operationId, started.runId);
    const history = await handle.fetchHistory();
    const payload = history.events?.[0]?.workflowExecutionStartedEventAttributes?.input?.payloads?.[0]?.data;
    assert.ok(payload);
    await handle.terminate('test: input read');
    const input = JSON.parse(Buffer.from(payload).toString('utf8')) as { transfer?: unknown };
    assert.deepEqual(input.transfer, { ...stored, mode: 'relay' });
    assert.deepEqual((await harness().store.get('cluster', 'cl'))?.transfer, stored);
  });

  void test('apply sets transfer options from the file; a change of them alone starts no resync', async () => {
    const file = join(harness().dataDir, 'transfer.yaml');
    const description = {
      clusters: [{ name: 'plain', members: ['web1'], transfer: { mode: 'auto', uplinkMbit: 100 } }],
    };
    writeFileSync(file, stringify(description));
    const applied = await ok(['apply', file, '--yes']);
    assert.match(applied.out, /^ {2}~ cluster plain \(update\)$/m);
    assert.match(applied.out, /^Operations:\n {2}\(none\)$/m);
    assert.deepEqual((await harness().store.get('cluster', 'plain'))?.transfer, { mode: 'auto', uplinkMbit: 100 });
    assert.match((await ok(['apply', file, '--plan'])).out, /^ {2}= cluster plain \(unchanged\)$/m);

    // Members changed as well: the cluster is resynced, as before.
    description.clusters[0]!.members.push('web2');
    writeFileSync(file, stringify(description));
    assert.match((await ok(['apply', file, '--plan'])).out, /^ {2}1\. resync cluster plain$/m);

    const bad = join(harness().dataDir, 'bad-transfer.yaml');
    writeFileSync(bad, stringify({ clusters: [{ name: 'plain', members: ['web1'], transfer: { uplinkMbit: -5 } }] }));
    const refused = await cli(['apply', bad, '--yes']);
    assert.equal(refused.code, 1);
    assert.match(refused.err, /^ {2}clusters\.0\.transfer\.uplinkMbit: must be a positive number of Mbit\/s$/m);
  });
});
