import assert from 'node:assert/strict';
import { promises as fs } from 'node:fs';
import { describe, test } from 'node:test';
import { serverInventorySchema } from '../../domain/model';
import { bedFactsSchema, DEFAULT_SERVER_BODY } from '../../testbed';
import { useTestBed } from '../support/testbed';

/** Writes a vhost for `domain` serving `body` into the host's sitefleet vhost dir, then reloads the web server. */
async function deployStaticSite(
  bed: ReturnType<ReturnType<typeof useTestBed>>,
  host: string,
  domain: string,
  body: string,
): Promise<void> {
  const facts = bed.facts.hosts.find((h) => h.name === host);
  assert.ok(facts?.vhostDir, `${host} is a web host`);
  const root = `/var/www/${domain}`;
  await bed.exec(host, ['mkdir', '-p', root]);
  await bed.writeFile(host, `${root}/index.html`, body);
  if (facts.roles.includes('web-nginx')) {
    const vhost = `server {\n  listen 80;\n  server_name ${domain};\n  root ${root};\n}\n`;
    await bed.writeFile(host, `${facts.vhostDir}/${domain}.conf`, vhost, { user: 'aegir' });
    await bed.exec(host, ['service', 'nginx', 'reload']);
  } else {
    const vhost = `<VirtualHost *:80>\n  ServerName ${domain}\n  DocumentRoot ${root}\n  <Directory ${root}>\n    Require all granted\n  </Directory>\n</VirtualHost>\n`;
    await bed.writeFile(host, `${facts.vhostDir}/${domain}.conf`, vhost, { user: 'aegir' });
    await bed.exec(host, ['service', 'apache2', 'reload']);
  }
}

/** Polls until GET returns `status` (a reload takes effect shortly after the command returns). */
async function waitForBody(
  bed: ReturnType<ReturnType<typeof useTestBed>>,
  host: string,
  domain: string,
  expected: string,
) {
  const deadline = Date.now() + 5000;
  for (;;) {
    const res = await bed.httpGet(host, '/', { headers: { Host: domain } });
    if (res.body === expected || Date.now() > deadline) return res;
    await new Promise((r) => setTimeout(r, 50));
  }
}

void describe('web hosts', () => {
  const bed = useTestBed({
    hosts: [{ roles: ['web-nginx'] }, { roles: ['web-nginx'] }, { roles: ['web-apache'] }],
  });

  void test('two nginx hosts both listen on port 80 and serve their own content for the same site', async () => {
    await deployStaticSite(bed(), 'h1', 'site.example.com', 'content of h1\n');
    await deployStaticSite(bed(), 'h2', 'site.example.com', 'content of h2\n');

    const fromH1 = await waitForBody(bed(), 'h1', 'site.example.com', 'content of h1\n');
    const fromH2 = await waitForBody(bed(), 'h2', 'site.example.com', 'content of h2\n');
    assert.equal(fromH1.status, 200);
    assert.equal(fromH1.body, 'content of h1\n');
    assert.equal(fromH2.status, 200);
    assert.equal(fromH2.body, 'content of h2\n');
  });

  void test('an unknown name gets the recognizable default 404 on nginx and apache', async () => {
    for (const host of ['h1', 'h3']) {
      const res = await bed().httpGet(host, '/anything', { headers: { Host: 'unknown.example.com' } });
      assert.equal(res.status, 404, host);
      assert.equal(res.body.trim(), DEFAULT_SERVER_BODY, host);
    }
  });

  void test('apache passes PHP to php-fpm through proxy_fcgi', async () => {
    await deployStaticSite(bed(), 'h3', 'php.example.com', 'placeholder');
    await bed().writeFile('h3', '/var/www/php.example.com/index.php', '<?php echo PHP_SAPI, " on ", gethostname();');
    await bed().exec('h3', ['rm', '/var/www/php.example.com/index.html']);
    const res = await bed().httpGet('h3', '/index.php', { headers: { Host: 'php.example.com' } });
    assert.equal(res.status, 200);
    assert.equal(res.body, 'fpm-fcgi on h3');
  });

  void test('`service nginx start` works inside a host', async () => {
    await bed().exec('h2', ['service', 'nginx', 'stop']);
    await bed().waitForPort('h2', 80, { open: false });
    const start = await bed().exec('h2', ['service', 'nginx', 'start']);
    assert.match(start.stdout, /Starting nginx/);
    await bed().waitForPort('h2', 80);
    const status = await bed().exec('h2', ['service', 'nginx', 'status']);
    assert.match(status.stdout, /nginx is running/);
  });

  void test('up writes an inventory that sitefleet parses, and the bed facts beside it', async () => {
    const inventory = serverInventorySchema.parse(JSON.parse(await fs.readFile(bed().facts.inventoryFile, 'utf8')));
    assert.deepEqual(
      inventory.servers.map((s) => [s.name, s.host, s.http?.type]),
      [
        ['h1', bed().ip('h1'), 'nginx'],
        ['h2', bed().ip('h2'), 'nginx'],
        ['h3', bed().ip('h3'), 'apache'],
      ],
    );
    for (const server of inventory.servers) {
      assert.equal(server.ssh.user, 'root');
      assert.equal(server.ssh.keyPath, bed().facts.clientKeyFile);
      assert.equal(server.aegirRoot, '/var/aegir');
      // The pinned fingerprint is the one the host's sshd presents.
      const pub = await bed().readFile(server.name, '/etc/ssh/ssh_host_ed25519_key.pub');
      const { stdout } = await bed().exec(server.name, ['ssh-keygen', '-lf', '/etc/ssh/ssh_host_ed25519_key.pub']);
      assert.ok(pub.startsWith('ssh-ed25519 '));
      assert.equal(stdout.split(' ')[1], server.ssh.hostKey);
    }
    const facts = bedFactsSchema.parse(JSON.parse(await fs.readFile(`${bed().facts.dir}/facts.json`, 'utf8')));
    assert.equal(facts.subnet, bed().plan.subnet);
    assert.deepEqual(
      facts.hosts.map((h) => h.roles),
      [['web-nginx'], ['web-nginx'], ['web-apache']],
    );
  });
});
