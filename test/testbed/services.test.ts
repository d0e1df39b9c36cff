import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { promises as fs } from 'node:fs';
import { describe, test } from 'node:test';
import { promisify } from 'node:util';
import { BACKEND_HEADER, DB_ADMIN_USER, GANESHA_EXPORTS_FILE, GANESHA_PID_FILE } from '../../testbed';
import { useTestBed } from '../support/testbed';

const run = promisify(execFile);

void describe('db, nfs and lb roles', () => {
  const bed = useTestBed({
    hosts: [
      { roles: ['web-nginx'] },
      { roles: ['web-nginx'] },
      { roles: ['db'] },
      { roles: ['nfs'] },
      { roles: ['lb'] },
    ],
  });

  void test('MariaDB on the db host accepts the admin account from a web host', async () => {
    const db = bed().facts.db;
    assert.ok(db);
    assert.equal(db.adminUser, DB_ADMIN_USER);
    assert.equal((await fs.stat(db.passwordFile)).mode & 0o777, 0o600);
    const password = (await fs.readFile(db.passwordFile, 'utf8')).trim();
    const query = ['mysql', '-h', bed().ip('h3'), '-u', db.adminUser, '--batch', '--skip-column-names'];

    const ok = await bed().exec('h1', [...query, '-e', 'SELECT CURRENT_USER(), @@hostname'], {
      env: { MYSQL_PWD: password },
    });
    assert.equal(ok.stdout, `${DB_ADMIN_USER}@%\th3\n`);

    const wrong = await bed().exec('h1', [...query, '-e', 'SELECT 1'], { env: { MYSQL_PWD: 'wrong' }, check: false });
    assert.notEqual(wrong.code, 0);
    assert.match(wrong.stderr, /Access denied/);
  });

  void test('root on the db host reaches MariaDB over the unix socket through ssh', async () => {
    await bed().assertRoute('h3');
    const { stdout } = await run('ssh', [
      ...bed().sshArgs('h3'),
      'mysql --batch --skip-column-names -e "SELECT CURRENT_USER()"',
    ]);
    assert.equal(stdout, 'root@localhost\n');
  });

  void test('an nfs-ganesha export on the nfs host is readable from another host over NFS', async () => {
    const nfsIp = bed().ip('h4');
    await bed().exec('h4', ['mkdir', '-p', '/var/aegir/platforms'], { user: 'aegir' });
    await bed().writeFile('h4', '/var/aegir/platforms/hello.txt', 'hello over nfs\n', { user: 'aegir' });
    await bed().writeFile(
      'h4',
      GANESHA_EXPORTS_FILE,
      [
        'EXPORT {',
        '  Export_Id = 10;',
        '  Path = /var/aegir/platforms;',
        '  Pseudo = /var/aegir/platforms;',
        '  Protocols = 3, 4;',
        '  Squash = No_Root_Squash;',
        '  FSAL { Name = VFS; }',
        `  CLIENT { Clients = ${bed().plan.subnet}; Access_Type = RO; }`,
        '}',
        '',
      ].join('\n'),
    );
    const pid = (await bed().readFile('h4', GANESHA_PID_FILE)).trim();
    await bed().exec('h4', ['kill', '-HUP', pid]);

    const url = `nfs://${nfsIp}/var/aegir/platforms`;
    let listing = await bed().exec('h1', ['nfs-ls', url], { check: false });
    for (let i = 0; i < 50 && listing.code !== 0; i++) {
      await new Promise((r) => setTimeout(r, 100));
      listing = await bed().exec('h1', ['nfs-ls', url], { check: false });
    }
    assert.equal(listing.code, 0, listing.stderr);
    // Numeric owner 1500: aegir's uid, as written on the nfs host.
    assert.match(listing.stdout, /^-rw-r--r--\s+1\s+1500\s+1500\s+15 hello\.txt$/m);
    const content = await bed().exec('h1', ['nfs-cat', `${url}/hello.txt`]);
    assert.equal(content.stdout, 'hello over nfs\n');
  });

  void test('haproxy on the lb host spreads requests over both web hosts', async () => {
    const served: string[] = [];
    for (let i = 0; i < 8; i++) {
      const res = await bed().httpGet('h5', '/');
      assert.equal(res.status, 404);
      served.push(String(res.headers[BACKEND_HEADER.toLowerCase()]));
    }
    assert.deepEqual([...new Set(served)].sort(), ['h1', 'h2']);
    assert.equal(served.filter((s) => s === 'h1').length, 4);
  });
});
