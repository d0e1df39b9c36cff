import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { parse as parseYaml } from 'yaml';
import { applyFileSchema, formatPlan, type ApplyPlan } from '../../cli/apply';
import { FIELD_MEANINGS, FLEET_EXAMPLE, fleetFieldRows, fleetFileDoc } from '../../cli/fleet-doc';
import { runCli } from '../../cli/program';

const FAKE = (c: string) => `SHA256:${c.repeat(43)}`;

void describe('fleet file reference and apply plan', () => {
  void test('docs/fleet-file.md is what the schemas generate (npm run docs:fleet-file)', () => {
    const onDisk = readFileSync(join(__dirname, '..', '..', 'docs', 'fleet-file.md'), 'utf8');
    assert.equal(onDisk, fleetFileDoc(), 'docs/fleet-file.md is stale: run npm run docs:fleet-file');
  });

  void test('every field of every resource has a meaning, and every meaning a field', () => {
    const paths = fleetFieldRows().map((r) => r.path);
    assert.deepEqual(
      paths.filter((p) => !FIELD_MEANINGS[p]),
      [],
    );
    assert.deepEqual(
      Object.keys(FIELD_MEANINGS).filter((k) => !paths.includes(k)),
      [],
    );
    // The rules come from the schemas: a refined field shows its rule, a defaulted one its default.
    const row = (p: string) => fleetFieldRows().find((r) => r.path === p);
    assert.match(row('servers[].aegirRoot')!.type, /not \/ or a system directory/);
    assert.equal(row('servers[].ssh.port')!.default, '22');
    assert.equal(row('servers[].ssh.hostKey')!.required, false);
    assert.equal(row('packs[].share.clients')!.required, true);
  });

  void test('the example is a valid description of a 3-node cluster and a 1+2 pack with WordPress', async () => {
    const file = applyFileSchema.parse(parseYaml(FLEET_EXAMPLE));
    assert.deepEqual(file.clusters[0]!.members.length, 3);
    assert.equal(file.packs[0]!.slaves.length, 2);
    assert.ok(file.platforms.every((p) => p.profile === 'wordpress'));
    assert.equal(file.sites.length, 2);
    const out: string[] = [];
    const code = await runCli(['apply', '--example'], {
      out: (l) => out.push(l),
      err: (l) => out.push(l),
      env: {},
      isTTY: false,
    });
    assert.equal(code, 0);
    assert.equal(out.join('\n'), FLEET_EXAMPLE.trimEnd());
    assert.ok(fleetFileDoc().includes(FLEET_EXAMPLE.trimEnd()));
  });

  void test('the plan shows each update field by field, marks a host-key change, and numbers steps 1, 2, 3', () => {
    const before = {
      name: 'web1',
      host: '10.0.0.1',
      ssh: { user: 'root', port: 22, hostKey: FAKE('A') },
      aegirRoot: '/var/aegir',
    };
    const after = { ...before, host: '10.0.0.2', ssh: { ...before.ssh, hostKey: FAKE('B') } };
    const plan: ApplyPlan = {
      resources: [
        { kind: 'server', plural: 'servers', key: 'web1', change: 'update', body: after, existing: before },
        { kind: 'site', plural: 'sites', key: 'a.example.com', change: 'create', body: {} },
      ],
      schedules: [],
      operations: [
        { phase: 1, label: 'verify server web1', method: 'POST', path: '/v1/servers/web1/verify' },
        { phase: 3, label: 'deploy platform wp', method: 'POST', path: '/v1/platforms/wp/deploy' },
        { phase: 3, label: 'deploy platform wp2', method: 'POST', path: '/v1/platforms/wp2/deploy' },
        { phase: 5, label: 'install site a.example.com', method: 'POST', path: '/v1/sites/a.example.com/install' },
      ],
    };
    const lines = formatPlan(plan);
    assert.deepEqual(lines, [
      'Inventory:',
      '  ~ server web1 (update)',
      '      host: "10.0.0.1" → "10.0.0.2"',
      `      ! ssh.hostKey: "${FAKE('A')}" → "${FAKE('B')}"`,
      "        HOST KEY CHANGE: from now on only the new key is trusted; make sure it is the server's real key",
      '  + site a.example.com (create)',
      'Operations:',
      '  1. verify server web1',
      '  2. deploy platform wp',
      '  2. deploy platform wp2',
      '  3. install site a.example.com',
    ]);
    const colored = formatPlan(plan, { color: true });
    assert.ok(colored.some((l) => l.startsWith('\u001b[31m') && l.includes('ssh.hostKey')));
    assert.ok(!colored.some((l) => l.includes('host: ') && l.includes('\u001b[')));
  });
});
