import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { probeSite } from '../../activities/checks';
import { syncPlatform } from '../../activities/platform';
import { renderVhost } from '../../activities/render';
import { inspectSite, installVhost, removeVhost, restoreVhost } from '../../activities/vhost';
import { ensureWebConfig, testWebConfig } from '../../activities/web-server';
import { platformSchema, siteSchema, type Platform, type Server, type Site } from '../../domain/model';
import { vhostPath } from '../../domain/paths';
import { DEFAULT_SERVER_BODY } from '../../testbed';
import { useTestBed } from '../support/testbed';
import { failure, serverOf, useWorkerEnvironment } from './bed-servers';

const work = useWorkerEnvironment();
const bed = useTestBed({ hosts: [{ roles: ['web-nginx'] }, { roles: ['web-apache'] }] });

/** A one-file PHP platform that names the host it served. */
function helloPlatform(): Platform {
  const dir = mkdtempSync(join(work, 'hello-'));
  mkdirSync(dir, { recursive: true });
  writeFileSync(
    join(dir, 'index.php'),
    '<?php echo "hello from " . gethostname() . " for " . $_SERVER["HTTP_HOST"] . "\\n";\n',
  );
  return platformSchema.parse({
    name: 'hello',
    target: { kind: 'cluster', name: 'c1' },
    source: { type: 'path', path: dir },
    profile: 'php',
  });
}

const platform = helloPlatform();
const site: Site = siteSchema.parse({
  domain: 'hello.example.com',
  aliases: ['www.hello.example.com'],
  platform: 'hello',
});

async function get(host: string, domain = site.domain) {
  return bed().httpGet(host, '/', { headers: { Host: domain } });
}

/** The server with an https port whose certificate files the test creates (or not). */
function withHttps(server: Server, certificate: string, key: string): Server {
  if (!server.http) throw new Error('no http');
  return { ...server, http: { ...server.http, https: { port: 443, certificate, key } } };
}

async function selfSignedCertificate(host: string): Promise<{ certificate: string; key: string }> {
  const certificate = '/etc/ssl/sitefleet-test/cert.pem';
  const key = '/etc/ssl/sitefleet-test/key.pem';
  await bed().exec(host, ['mkdir', '-p', '/etc/ssl/sitefleet-test']);
  await bed().exec(host, [
    'openssl',
    'req',
    '-x509',
    '-newkey',
    'rsa:2048',
    '-nodes',
    '-days',
    '2',
    '-subj',
    `/CN=${site.domain}`,
    '-keyout',
    key,
    '-out',
    certificate,
  ]);
  return { certificate, key };
}

for (const [host, type] of [
  ['h1', 'nginx'],
  ['h2', 'apache'],
] as const) {
  describe(`vhosts on ${type}`, () => {
    test('the web config includes the vhost directory; a second run changes nothing', async () => {
      const server = serverOf(bed(), host);
      await ensureWebConfig({ server });
      const again = await ensureWebConfig({ server });
      assert.equal(again.changed, false);
      assert.equal((await testWebConfig({ server })).ok, true);
      await syncPlatform({ server, platform });
    });

    test("installs the vhost at Aegir's path, tested and reloaded: the site answers by name and alias", async () => {
      const server = serverOf(bed(), host);
      const result = await installVhost({ server, site, platform });
      const path = vhostPath(server, type, site.domain);
      assert.deepEqual(result, { server: host, path, changed: true, previous: null });
      assert.equal(await bed().readFile(host, path), renderVhost({ server, site, platform }));
      assert.equal((await bed().exec(host, type === 'nginx' ? ['nginx', '-t'] : ['apachectl', 'configtest'])).code, 0);
      assert.deepEqual(await get(host).then((r) => [r.status, r.body]), [
        200,
        `hello from ${host} for ${site.domain}\n`,
      ]);
      assert.equal((await get(host, 'www.hello.example.com')).status, 200);
      const probe = await probeSite({ server, site, expectBodyMarker: `hello from ${host}` });
      assert.equal(probe.ok, true, probe.detail);
    });

    test('installing the same vhost again changes nothing and returns what is there', async () => {
      const server = serverOf(bed(), host);
      const again = await installVhost({ server, site, platform });
      assert.equal(again.changed, false);
      assert.equal(again.previous, renderVhost({ server, site, platform }));
      assert.equal((await inspectSite({ server, site, platform })).vhost, again.previous);
    });

    test('a vhost that fails the config test is rolled back; the server still serves the old site', async () => {
      const server = serverOf(bed(), host);
      const before = await bed().readFile(host, vhostPath(server, type, site.domain));
      const broken = withHttps(server, '/etc/ssl/sitefleet-missing/cert.pem', '/etc/ssl/sitefleet-missing/key.pem');
      await assert.rejects(
        installVhost({ server: broken, site: { ...site, https: true }, platform }),
        failure('ConfigTestFailed', {
          nonRetryable: true,
          message: new RegExp(
            `server ${host}: the vhost of ${site.domain} failed the ${type} config test.*Test output: .+`,
            's',
          ),
        }),
      );
      assert.equal(
        await bed().readFile(host, vhostPath(server, type, site.domain)),
        before,
        'the previous vhost is back',
      );
      assert.equal((await testWebConfig({ server })).ok, true);
      await bed().exec(host, ['service', type === 'nginx' ? 'nginx' : 'apache2', 'reload']);
      assert.equal((await get(host)).status, 200, 'the server serves the old site, even after a reload');
    });

    test('a new vhost that fails the test is removed again', async () => {
      const server = serverOf(bed(), host);
      const broken = withHttps(server, '/etc/ssl/sitefleet-missing/cert.pem', '/etc/ssl/sitefleet-missing/key.pem');
      const other = { ...site, domain: 'other.example.com', aliases: [], https: true };
      await assert.rejects(
        installVhost({ server: broken, site: other, platform }),
        failure('ConfigTestFailed', { nonRetryable: true }),
      );
      assert.equal(
        (await bed().exec(host, ['test', '-e', vhostPath(server, type, other.domain)], { check: false })).code,
        1,
      );
    });

    test('vhosts changed at once share a config test and reload; one that breaks the config fails alone', async () => {
      const server = serverOf(bed(), host);
      const broken = withHttps(server, '/etc/ssl/sitefleet-missing/cert.pem', '/etc/ssl/sitefleet-missing/key.pem');
      const good = ['a1', 'a2', 'a3'].map((n) => ({ ...site, domain: `${n}.example.com`, aliases: [] }));
      const bad = { ...site, domain: 'bad.example.com', aliases: [], https: true };
      const settled = await Promise.allSettled([
        ...good.map((s) => installVhost({ server, site: s, platform })),
        installVhost({ server: broken, site: bad, platform }),
      ]);
      for (const [i, s] of good.entries()) {
        const r = settled[i];
        assert.equal(r?.status, 'fulfilled', `${s.domain}: ${r?.status === 'rejected' ? String(r.reason) : ''}`);
        assert.equal((await get(host, s.domain)).status, 200, `${s.domain} answers`);
      }
      const last = settled[good.length];
      assert.equal(last?.status, 'rejected');
      await assert.rejects(
        Promise.reject((last as PromiseRejectedResult).reason),
        failure('ConfigTestFailed', { nonRetryable: true, message: /bad\.example\.com/ }),
      );
      assert.equal(
        (await bed().exec(host, ['test', '-e', vhostPath(server, type, bad.domain)], { check: false })).code,
        1,
        'the broken vhost was removed again',
      );
      await Promise.all(good.map((s) => removeVhost({ server, site: s })));
      assert.equal((await testWebConfig({ server })).ok, true);
      for (const s of good) assert.notEqual((await get(host, s.domain)).body, `hello from ${host} for ${s.domain}\n`);
    });

    test("serves https with the server's own certificate", async () => {
      const server = withHttps(
        serverOf(bed(), host),
        ...(Object.values(await selfSignedCertificate(host)) as [string, string]),
      );
      await ensureWebConfig({ server });
      await installVhost({ server, site: { ...site, https: true }, platform });
      const probe = await probeSite({ server, site, https: true, expectBodyMarker: `hello from ${host}` });
      assert.equal(probe.ok, true, probe.detail);
      await installVhost({ server, site, platform });
    });

    test('the disabled variant answers 503 and runs no PHP; enabling restores the site', async () => {
      const server = serverOf(bed(), host);
      const enabled = await bed().readFile(host, vhostPath(server, type, site.domain));
      const disabled = await installVhost({ server, site: { ...site, status: 'disabled' }, platform });
      assert.equal(disabled.previous, enabled);
      const r = await get(host);
      assert.equal(r.status, 503);
      assert.match(r.body, /This site is disabled/);
      await restoreVhost({ server, site, previous: disabled.previous });
      assert.equal((await get(host)).status, 200);
    });

    test('removal (the compensation) is tested and reloaded; the default server answers again; removing twice is a no-op', async () => {
      const server = serverOf(bed(), host);
      const removed = await removeVhost({ server, site });
      assert.equal(removed.changed, true);
      const r = await get(host);
      assert.equal(r.status, 404);
      assert.match(r.body, new RegExp(DEFAULT_SERVER_BODY));
      assert.equal((await removeVhost({ server, site })).changed, false);
      assert.equal((await inspectSite({ server, site, platform })).vhost, null);
    });
  });
}
