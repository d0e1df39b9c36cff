import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import * as path from 'node:path';
import { describe, test } from 'node:test';
import { promisify } from 'node:util';
import { parseHostsSpec, parseRolesSpec } from '../../testbed/cli';
import { planBed } from '../../testbed/plan';

const run = promisify(execFile);
const REPO_ROOT = path.resolve(__dirname, '..', '..');

void describe('testbed CLI', () => {
  void test('--roles takes one entry per host, or one entry for all hosts', () => {
    assert.deepEqual(parseRolesSpec('web-nginx,web-apache,db+nfs,none', 4), [
      ['web-nginx'],
      ['web-apache'],
      ['db', 'nfs'],
      [],
    ]);
    assert.deepEqual(parseRolesSpec('web-nginx', 2), [['web-nginx'], ['web-nginx']]);
    assert.throws(() => parseRolesSpec('web-nginx,db', 3), /lists 2 hosts but up was asked for 3/);
    assert.throws(() => parseRolesSpec('mail', 1), /unknown role "mail"/);
  });

  void test('--roles: vm: makes a QEMU guest; nfs-kernel only on VM hosts, VM hosts only with VM roles', () => {
    assert.deepEqual(parseHostsSpec('vm:web-nginx+nfs-kernel,vm:none,db', 3), [
      { roles: ['web-nginx', 'nfs-kernel'], vm: true },
      { roles: [], vm: true },
      { roles: ['db'], vm: false },
    ]);
    const plan = planBed({ name: 'vmplan', hosts: [{ roles: ['nfs-kernel'], vm: true }, { roles: ['db'] }] });
    assert.equal(plan.hosts[0]?.vm, true);
    assert.equal(plan.hosts[0]?.veth, 'sf-vmplan-1', "a VM host's tap has the name a veth would have");
    assert.equal(plan.hosts[1]?.vm, undefined);
    assert.throws(
      () => planBed({ name: 'vmplan', hosts: [{ roles: ['nfs-kernel'] }] }),
      /host h1: role nfs-kernel needs a VM host/,
    );
    assert.throws(
      () => planBed({ name: 'vmplan', hosts: [{ roles: ['db'], vm: true }] }),
      /host h1: a VM host cannot have role "db"/,
    );
  });

  void test('without root, up stops with a clear message before touching anything', async () => {
    const cli = path.join(REPO_ROOT, 'testbed', 'cli.ts');
    const argv = [
      '--reuid=65534',
      '--regid=65534',
      '--clear-groups',
      '--',
      process.execPath,
      '--import',
      'tsx',
      cli,
      'up',
      '1',
    ];
    const result = await run('setpriv', argv, { cwd: REPO_ROOT, env: { ...process.env, HOME: '/tmp' } }).then(
      () => ({ code: 0, stderr: '' }),
      (error: { code: number; stderr: string }) => error,
    );
    assert.equal(result.code, 1);
    assert.match(result.stderr, /the test bed needs root/);
  });
});
