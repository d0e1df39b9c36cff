/**
 * End to end on test hosts: Debian's WordPress as a platform on a 3-node cluster, a site with its database on a
 * MariaDB host, verification, drift and repair, compensation, and one operation at a time per resource.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { WorkflowExecutionAlreadyStartedError, WorkflowFailedError } from '@temporalio/client';
import { workflowIds } from '../../domain/operations';
import type { InstallSiteResult } from '../../workflows/site';
import type { PlatformResult } from '../../workflows/platform';
import type { VerifyReport, ResyncReport } from '../../workflows/verify';
import { clusterGroup, useFleet } from '../support/fleet';
import { wordpressPlatform, wordpressSite } from '../support/wordpress';

const fleet = useFleet({
  hosts: [{ roles: ['web-nginx'] }, { roles: ['web-nginx'] }, { roles: ['web-nginx'] }, { roles: ['db'] }],
});

const platform = wordpressPlatform;
const site = wordpressSite;

describe('cluster of three nginx members with WordPress', () => {
  const members = () => ['h1', 'h2', 'h3'].map((n) => fleet().server(n));
  const group = () => clusterGroup('c1', members());
  const installInput = (domain: string) => ({
    site: site(domain),
    platform,
    group: group(),
    dbServer: fleet().server('h4'),
  });

  test('CreatePlatformOnCluster puts the WordPress tree on every member', async () => {
    const result = await fleet().run<PlatformResult>('CreatePlatformOnCluster', workflowIds.platform('wp'), {
      platform,
      group: group(),
    });
    assert.deepEqual(result.synced.map((s) => s.server).sort(), ['h1', 'h2', 'h3']);
    for (const host of ['h1', 'h2', 'h3']) {
      const out = await fleet().bed.exec(host, ['cat', '/var/aegir/platforms/wp/wp-includes/version.php']);
      assert.match(out.stdout, /\$wp_version = '6\./, `${host} has the WordPress code`);
    }
  });

  test('InstallSiteOnCluster: every member answers the site with HTTP 200 and WordPress content', async () => {
    const result = await fleet().run<InstallSiteResult>(
      'InstallSiteOnCluster',
      workflowIds.site('blog.example.com'),
      installInput('blog.example.com'),
    );
    assert.equal(result.members.length, 3);
    for (const host of ['h1', 'h2', 'h3']) {
      const res = await fleet().bed.httpGet(host, '/', { headers: { Host: 'blog.example.com' } });
      assert.equal(res.status, 200, `${host} answers 200`);
      // Debian's package ships no theme, so the front page is blank; the login page and the REST index are not.
      const login = await fleet().bed.httpGet(host, '/wp-login.php', { headers: { Host: 'blog.example.com' } });
      assert.equal(login.status, 200, `${host} serves wp-login.php`);
      assert.match(login.body, /wp-login\.php|WordPress/, `${host} serves the WordPress login page`);
      const rest = await fleet().bed.httpGet(host, '/?rest_route=/', { headers: { Host: 'blog.example.com' } });
      assert.equal(
        (JSON.parse(rest.body) as { name: string }).name,
        'blog.example.com',
        `${host} reads the site's database`,
      );
    }
    const users = await fleet().bed.exec('h4', [
      'mysql',
      '--batch',
      '--skip-column-names',
      '-e',
      "SELECT host FROM mysql.user WHERE user LIKE 'blog\\_example\\_com\\_%' ORDER BY host",
    ]);
    const expected = ['h1', 'h2', 'h3'].map((h) => fleet().bed.ip(h)).sort();
    assert.deepEqual(
      users.stdout.trim().split('\n').sort(),
      expected,
      'the site user may log in from each member only',
    );
  });

  test('VerifyClusterNodes reports every node green', async () => {
    const report = await fleet().run<VerifyReport>('VerifyClusterNodes', workflowIds.verify('cluster', 'c1'), {
      group: group(),
      platforms: [platform],
      sites: [site('blog.example.com')],
      dbServers: [fleet().server('h4')],
    });
    const failing = report.nodes.flatMap((n) =>
      n.checks.filter((c) => !c.ok).map((c) => `${n.server}:${c.name}: ${c.detail}`),
    );
    assert.deepEqual(failing, []);
    assert.equal(report.ok, true);
    assert.equal(report.nodes.length, 3);
  });

  test('the health check on the members without the full probe catches a member whose database login fails', async () => {
    // One site on three members: its full probe (WordPress's REST index) runs on h1, the cheap health script on h2
    // and h3. When h2's database account stops accepting h2's password, h2's check must fail, and only that one.
    // (Changed on the database server, not in h2's settings file: PHP's opcache may serve a cached copy of a file
    // for a while after it changes.)
    const settings = await fleet().bed.readFile('h2', '/var/aegir/platforms/wp/sites/blog.example.com/wp-config.php');
    const user = /define\('DB_USER', '([a-z0-9_]+)'\);/.exec(settings)?.[1];
    const password = /define\('DB_PASSWORD', '([A-Za-z0-9_-]+)'\);/.exec(settings)?.[1];
    assert.ok(user && password, 'the settings file names the database user and password');
    const account = `'${user}'@'${fleet().bed.ip('h2')}'`;
    const setPassword = (value: string) =>
      fleet().bed.exec('h4', ['mysql', '-e', `ALTER USER ${account} IDENTIFIED BY '${value}'`]);
    await setPassword('not-the-one-h2-has');
    try {
      const report = await fleet().run<VerifyReport>('VerifyClusterNodes', workflowIds.verify('cluster', 'c1'), {
        group: group(),
        platforms: [platform],
        sites: [site('blog.example.com')],
        dbServers: [fleet().server('h4')],
      });
      const probes = report.nodes.map((n) => ({
        server: n.server,
        check: n.checks.find((c) => c.name === 'probe:blog.example.com'),
      }));
      const failing = report.nodes.flatMap((n) => n.checks.filter((c) => !c.ok).map((c) => `${n.server}:${c.name}`));
      assert.deepEqual(failing, ['h2:probe:blog.example.com']);
      const h2 = probes.find((p) => p.server === 'h2')?.check;
      assert.match(h2?.detail ?? '', /health check: .*status 503.*database: Access denied/);
      assert.doesNotMatch(
        probes.find((p) => p.server === 'h1')?.check?.detail ?? '',
        /health check/,
        'h1 ran the full probe',
      );
      assert.match(
        probes.find((p) => p.server === 'h3')?.check?.detail ?? '',
        /^health check: /,
        'h3 ran the health check',
      );
    } finally {
      await setPassword(password);
    }
  });

  test('VerifyClusterNodes refuses an unknown fullProbes value, naming the field and the values it takes', async () => {
    await assert.rejects(
      fleet().run('VerifyClusterNodes', `${workflowIds.verify('cluster', 'c1')}-bad`, {
        group: group(),
        platforms: [platform],
        sites: [site('blog.example.com')],
        dbServers: [fleet().server('h4')],
        fullProbes: 'sometimes',
      }),
      (err: unknown) =>
        err instanceof WorkflowFailedError &&
        /fullProbes: must be "one-node" or "every-node", got "sometimes"/.test(String(err.cause?.message)),
    );
  });

  test('VerifyClusterNodes names exactly the broken node and check; ResyncCluster repairs the drift', async () => {
    await fleet().bed.exec('h3', ['rm', '-f', '/var/aegir/platforms/wp/wp-login.php']);
    await fleet().bed.stopService('h2', 'nginx');
    try {
      const verifyInput = {
        group: group(),
        platforms: [platform],
        sites: [site('blog.example.com')],
        dbServers: [fleet().server('h4')],
      };
      const report = await fleet().run<VerifyReport>(
        'VerifyClusterNodes',
        workflowIds.verify('cluster', 'c1'),
        verifyInput,
      );
      const failing = report.nodes.flatMap((n) => n.checks.filter((c) => !c.ok).map((c) => `${n.server}:${c.name}`));
      assert.ok(failing.includes('h3:drift:wp'), `h3 drift reported (${failing.join(', ')})`);
      assert.ok(
        failing.some((f) => f.startsWith('h2:')),
        `h2 reported (${failing.join(', ')})`,
      );
      assert.ok(!failing.some((f) => f.startsWith('h1:')), `h1 is healthy (${failing.join(', ')})`);
      assert.ok(
        !failing.some((f) => f.startsWith('h3:') && f !== 'h3:drift:wp'),
        `h3 has only drift (${failing.join(', ')})`,
      );

      await fleet().bed.startService('h2', 'nginx');
      // A lost vhost on h2: the resync writes every site's vhost of a member in one activity and reloads once.
      await fleet().bed.exec('h2', ['rm', '-f', '/var/aegir/config/server_h2/nginx/vhost.d/blog.example.com']);
      const resync = await fleet().run<ResyncReport>('ResyncCluster', workflowIds.resync('cluster', 'c1'), {
        group: group(),
        platforms: [platform],
        sites: [site('blog.example.com')],
        dbServers: [fleet().server('h4')],
      });
      assert.equal(resync.ok, true);
      assert.ok(
        resync.nodes.find((n) => n.server === 'h3')?.repaired.some((r) => r.startsWith('wp:')),
        'h3 was repaired',
      );
      assert.deepEqual(resync.nodes.find((n) => n.server === 'h2')?.repaired, ['vhost blog.example.com']);
      const again = await fleet().run<VerifyReport>(
        'VerifyClusterNodes',
        workflowIds.verify('cluster', 'c1'),
        verifyInput,
      );
      assert.equal(again.ok, true, JSON.stringify(again.nodes.map((n) => n.checks.filter((c) => !c.ok))));
    } finally {
      await fleet()
        .bed.startService('h2', 'nginx')
        .catch(() => undefined);
    }
  });

  test('ResyncCluster repairs the members it reaches and reports the one it cannot', async () => {
    // The code goes to all members in one activity; h3 fails there and again in the push of its own (retried).
    await fleet().bed.exec('h1', ['rm', '-f', '/var/aegir/platforms/wp/wp-login.php']);
    // sshd down, and its sessions with it (the worker's pooled connections and ssh masters close at once).
    await fleet().bed.stopService('h3', 'ssh');
    await fleet().bed.exec('h3', ['pkill', '-x', 'sshd'], { check: false });
    try {
      const resync = await fleet().run<ResyncReport>('ResyncCluster', workflowIds.resync('cluster', 'c1'), {
        group: group(),
        platforms: [platform],
        sites: [site('blog.example.com')],
        dbServers: [fleet().server('h4')],
      });
      assert.equal(resync.ok, false);
      const byServer = new Map(resync.nodes.map((n) => [n.server, n]));
      assert.deepEqual(byServer.get('h1')?.repaired, ['wp: 1 file(s)']);
      assert.equal(byServer.get('h1')?.ok, true);
      assert.deepEqual(byServer.get('h2'), { server: 'h2', ok: true, repaired: [] });
      assert.equal(byServer.get('h3')?.ok, false);
      assert.match(byServer.get('h3')?.error ?? '', /h3/);
      const login = await fleet().bed.httpGet('h1', '/wp-login.php', { headers: { Host: 'blog.example.com' } });
      assert.equal(login.status, 200, 'h1 serves the repaired file');
    } finally {
      await fleet().bed.startService('h3', 'ssh');
    }
  });

  test('a second concurrent install of the same site is refused', async () => {
    const id = workflowIds.site('two.example.com');
    const first = await fleet().start('InstallSiteOnCluster', id, installInput('two.example.com'));
    await assert.rejects(
      fleet().start('InstallSiteOnCluster', id, installInput('two.example.com')),
      WorkflowExecutionAlreadyStartedError,
    );
    await first.result();
  });

  test('a config test failing on one member undoes the install everywhere; every member keeps serving', async () => {
    // A stray file in h2's vhost dir that breaks nginx -t as soon as any vhost changes there.
    const before = await snapshot(['h1', 'h2', 'h3'], 'broken.example.com');
    await fleet().bed.writeFile(
      'h2',
      '/var/aegir/config/server_h2/nginx/vhost.d/zz-broken',
      'server { listen 80; this_is_not_a_directive; }\n',
    );
    try {
      await assert.rejects(
        fleet().run('InstallSiteOnCluster', workflowIds.site('broken.example.com'), installInput('broken.example.com')),
        (err: unknown) => err instanceof WorkflowFailedError && /install vhost failed/.test(String(err.cause?.message)),
      );
    } finally {
      await fleet().bed.exec('h2', ['rm', '-f', '/var/aegir/config/server_h2/nginx/vhost.d/zz-broken']);
    }
    assert.deepEqual(await snapshot(['h1', 'h2', 'h3'], 'broken.example.com'), before);
    for (const host of ['h1', 'h2', 'h3']) {
      const res = await fleet().bed.httpGet(host, '/', { headers: { Host: 'blog.example.com' } });
      assert.equal(res.status, 200, `${host} still serves blog.example.com`);
    }
  });

  test('a probe failing on one member (php-fpm down) undoes the install: vhosts, site dirs, database and user', async () => {
    const before = await snapshot(['h1', 'h2', 'h3'], 'probe.example.com');
    await fleet().bed.stopService('h3', 'php8.2-fpm');
    try {
      await assert.rejects(
        fleet().run('InstallSiteOnCluster', workflowIds.site('probe.example.com'), installInput('probe.example.com')),
        WorkflowFailedError,
      );
    } finally {
      await fleet().bed.startService('h3', 'php8.2-fpm');
    }
    assert.deepEqual(await snapshot(['h1', 'h2', 'h3'], 'probe.example.com'), before);
  });

  test('DeletePlatform is refused while sites remain; DeleteSite removes a site everywhere', async () => {
    await assert.rejects(
      fleet().run('DeletePlatform', workflowIds.platform('wp'), {
        platform,
        group: group(),
        sites: ['blog.example.com'],
      }),
      (err: unknown) => err instanceof WorkflowFailedError && /still has/.test(String(err.cause?.message)),
    );
    await fleet().run('DeleteSite', workflowIds.site('two.example.com'), {
      site: site('two.example.com'),
      platform,
      group: group(),
      dbServer: fleet().server('h4'),
    });
    for (const host of ['h1', 'h2', 'h3']) {
      const vhost = await fleet().bed.exec(
        host,
        ['test', '-e', '/var/aegir/config/server_' + host + '/nginx/vhost.d/two.example.com'],
        { check: false },
      );
      assert.notEqual(vhost.code, 0, `${host} has no vhost for the deleted site`);
    }
  });

  /** What a site leaves on the nodes and the db server: vhost files, site dirs, databases and users. */
  async function snapshot(hosts: string[], domain: string): Promise<Record<string, string>> {
    const state: Record<string, string> = {};
    for (const host of hosts) {
      const ls = await fleet().bed.exec(host, [
        'sh',
        '-c',
        `ls /var/aegir/config/server_${host}/nginx/vhost.d/ /var/aegir/platforms/wp/sites/ 2>&1`,
      ]);
      state[host] = ls.stdout;
    }
    const db = await fleet().bed.exec('h4', [
      'mysql',
      '--batch',
      '-e',
      'SHOW DATABASES; SELECT user, host FROM mysql.user ORDER BY user, host',
    ]);
    state.db = db.stdout;
    state.domain = domain;
    return state;
  }
});
