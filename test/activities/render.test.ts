import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { ApplicationFailure } from '@temporalio/common';
import {
  phpStringLiteral,
  renderExportsLine,
  renderFstabNfs,
  renderFstabSshfs,
  renderGaneshaExport,
  renderHaproxyBackend,
  renderServerInclude,
  renderSiteSettings,
  renderVhost,
  renderWordpressDispatcher,
  renderWordpressHealth,
} from '../../activities/render';
import { platformSchema, serverSchema, siteSchema, type Server } from '../../domain/model';
import { assertGolden } from './golden';

const HOST_KEY = `SHA256:${'A'.repeat(43)}`;
const https = { certificate: '/etc/ssl/certs/web1.pem', key: '/etc/ssl/private/web1.key' };
const nginx = serverSchema.parse({
  name: 'web1',
  host: '10.0.0.11',
  ssh: { hostKey: HOST_KEY },
  http: { type: 'nginx', https },
});
const apache = serverSchema.parse({
  name: 'web2',
  host: 'web2.internal',
  address: '10.0.0.12',
  ssh: { hostKey: HOST_KEY },
  http: { type: 'apache', port: 8080, https: { ...https, port: 8443 }, phpFpmSocket: '/run/php/php8.3-fpm.sock' },
});
const db = serverSchema.parse({ name: 'db1', host: '10.0.0.20', ssh: { hostKey: HOST_KEY }, db: { type: 'mariadb' } });
const platform = (profile: string) =>
  platformSchema.parse({
    name: 'p1',
    target: { kind: 'cluster', name: 'c1' },
    source: { type: 'path', path: '/srv/p1' },
    profile,
  });
const site = siteSchema.parse({ domain: 'example.com', aliases: ['www.example.com', 'example.org'], platform: 'p1' });
const credentials = {
  name: 'example_com_a1b2c3d4',
  user: 'example_com_a1b2c3d4',
  password: 'pW-0123456789abcdef_ABCDEFGHIJKL',
  host: '10.0.0.20',
  port: 3306,
};

describe('renderVhost', () => {
  const cases: [string, Server, object, string][] = [
    ['nginx-wordpress', nginx, {}, 'wordpress'],
    ['nginx-drupal-https', nginx, { https: true }, 'drupal'],
    ['nginx-static', nginx, { aliases: [] }, 'static'],
    ['nginx-disabled', nginx, { status: 'disabled', https: true }, 'drupal'],
    ['apache-wordpress', apache, {}, 'wordpress'],
    ['apache-drupal-https', apache, { https: true }, 'drupal'],
    ['apache-disabled', apache, { status: 'disabled' }, 'wordpress'],
  ];
  for (const [name, server, siteChange, profile] of cases) {
    test(`${name}: the server's own address, ports, socket and docroot`, () => {
      assertGolden(
        `render/vhost-${name}.conf`,
        renderVhost({ server, site: { ...site, ...siteChange }, platform: platform(profile) }),
      );
    });
  }

  test('refuses https for a server without a certificate, and a server without http', () => {
    const plain = serverSchema.parse({
      name: 'web3',
      host: '10.0.0.13',
      ssh: { hostKey: HOST_KEY },
      http: { type: 'nginx' },
    });
    assert.throws(
      () => renderVhost({ server: plain, site: { ...site, https: true }, platform: platform('drupal') }),
      (err: unknown) =>
        err instanceof ApplicationFailure && err.type === 'BadInput' && err.nonRetryable && /web3/.test(err.message),
    );
    assert.throws(() => renderVhost({ server: db, site, platform: platform('drupal') }), /no http service/);
  });

  test('refuses values that would inject config, whatever the caller built', () => {
    const evil = { ...site, domain: 'example.com; include /etc/shadow' };
    assert.throws(
      () => renderVhost({ server: nginx, site: evil, platform: platform('drupal') }),
      (err: unknown) =>
        err instanceof ApplicationFailure && err.type === 'BadInput' && /site: domain/.test(err.message),
    );
    const evilServer = { ...nginx, http: { ...nginx.http, phpFpmSocket: '/run/php.sock;\n}' } } as Server;
    assert.throws(() => renderVhost({ server: evilServer, site, platform: platform('drupal') }), /phpFpmSocket/);
  });
});

describe('renderers of shared config files', () => {
  test('server includes', () => {
    assertGolden('render/server-include-nginx.conf', renderServerInclude(nginx));
    assertGolden('render/server-include-apache.conf', renderServerInclude(apache));
  });

  test('exports line and ganesha EXPORT block', () => {
    assertGolden(
      'render/exports.line',
      renderExportsLine({ exportPath: '/var/aegir/platforms', clients: ['10.0.0.12', 'web3.example.com'] }),
    );
    assertGolden(
      'render/ganesha-export.conf',
      renderGaneshaExport({
        pack: 'alpha',
        exportId: 4242,
        exportPath: '/var/aegir/platforms',
        clients: ['10.0.0.0/24'],
      }),
    );
    assert.throws(
      () => renderExportsLine({ exportPath: '/var/aegir/platforms', clients: ['10.0.0.0/24(rw,no_root_squash) *'] }),
      /clients/,
    );
  });

  test('fstab lines for kernel NFS and sshfs', () => {
    assertGolden(
      'render/fstab-nfs.line',
      renderFstabNfs({
        shareHost: '10.0.0.11',
        exportPath: '/var/aegir/platforms',
        mountPoint: '/var/aegir/platforms',
      }),
    );
    assertGolden(
      'render/fstab-sshfs.line',
      renderFstabSshfs({
        remoteUser: 'aegir',
        shareHost: '10.0.0.11',
        sshPort: 2222,
        exportPath: '/var/aegir/platforms',
        mountPoint: '/var/aegir/platforms',
        identityFile: '/root/.ssh/sitefleet-pack-alpha',
        knownHostsFile: '/root/.ssh/sitefleet-known_hosts',
      }),
    );
  });

  test('haproxy backend: round robin, or pinned to the first member with the others as backups', () => {
    const input = { cluster: 'c1', members: [nginx, apache], checkHost: 'example.com', checkPath: '/' };
    assertGolden('render/haproxy-backend.cfg', renderHaproxyBackend({ ...input, pinToOne: false }));
    assertGolden('render/haproxy-backend-pinned.cfg', renderHaproxyBackend({ ...input, pinToOne: true }));
  });
});

describe('site settings', () => {
  const salts = [{ name: 'HASH_SALT', value: 'salt-0123456789abcdef0123456789abcdef012345' }];
  const wpSalts = ['AUTH_KEY', 'NONCE_SALT'].map((name) => ({ name, value: `${name.toLowerCase()}-0123456789abcdef` }));

  test('drupal settings.php', () => {
    assertGolden(
      'render/settings-drupal.php',
      renderSiteSettings({ server: nginx, site, platform: platform('drupal'), db: credentials, salts }),
    );
  });

  test('wordpress per-site config and the platform dispatcher that includes it by host', () => {
    assertGolden(
      'render/settings-wordpress.php',
      renderSiteSettings({ server: nginx, site, platform: platform('wordpress'), db: credentials, salts: wpSalts }),
    );
    assertGolden('render/wordpress-dispatcher.php', renderWordpressDispatcher(platform('wordpress')));
    assertGolden('render/wordpress-health.php', renderWordpressHealth(platform('wordpress')));
  });

  test('plain php settings', () => {
    assertGolden(
      'render/settings-php.php',
      renderSiteSettings({ server: nginx, site, platform: platform('php'), db: credentials, salts }),
    );
  });

  test('a password that is not a derived one is refused rather than written', () => {
    assert.throws(
      () =>
        renderSiteSettings({
          server: nginx,
          site,
          platform: platform('drupal'),
          db: { ...credentials, password: "x'); system('id" },
          salts,
        }),
      /database credentials: password/,
    );
  });

  test('php string literals escape quotes and backslashes', () => {
    assert.equal(phpStringLiteral("it's a \\ test"), "'it\\'s a \\\\ test'");
    assert.throws(() => phpStringLiteral(undefined), /undefined/);
  });
});
