import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { siteDatabaseName } from '../../activities/database';
import { syncPlatform } from '../../activities/platform';
import { ensureSiteDir, removeSiteDir } from '../../activities/site-files';
import { dbPasswordFor } from '../../activities/site-secrets';
import { platformSchema, serverSchema, siteSchema, type Platform } from '../../domain/model';
import { useTestBed } from '../support/testbed';
import { failure, serverOf, useWorkerEnvironment } from './bed-servers';

const work = useWorkerEnvironment();
const bed = useTestBed({ hosts: [{ roles: [] }] });

const dbServer = serverSchema.parse({
  name: 'db1',
  host: 'db1.internal',
  address: '10.9.9.9',
  ssh: { hostKey: `SHA256:${'A'.repeat(43)}` },
  db: { type: 'mariadb', port: 3307 },
});

function platformOf(name: string, profile: string): Platform {
  const dir = mkdtempSync(join(work, 'platform-'));
  writeFileSync(join(dir, 'index.php'), '<?php\n');
  return platformSchema.parse({
    name,
    target: { kind: 'server', name: 'h1' },
    source: { type: 'path', path: dir },
    profile,
  });
}

const wordpress = platformOf('wp', 'wordpress');
const drupal = platformOf('drupal', 'drupal');
const site = siteSchema.parse({
  domain: 'news.example.com',
  aliases: ['www.news.example.com', 'news.example.org'],
  platform: 'wp',
  dbServer: 'db1',
});
const sitePath = '/var/aegir/platforms/wp/sites/news.example.com';

async function sh(script: string): Promise<string> {
  return (await bed().exec('h1', ['sh', '-c', script])).stdout.trim();
}

describe('site directories', () => {
  test('creates the directory, uploads dirs writable by the web server, alias links and the settings with the derived password', async () => {
    const h1 = serverOf(bed(), 'h1');
    await syncPlatform({ server: h1, platform: wordpress });
    const result = await ensureSiteDir({ server: h1, site, platform: wordpress, dbServer });
    assert.deepEqual(result, {
      server: 'h1',
      path: sitePath,
      settingsFile: `${sitePath}/wp-config.php`,
      changed: true,
    });
    assert.equal(
      await sh(`cd ${sitePath} && stat -c '%n %U:%G %a' . files private wp-config.php`),
      [
        '. aegir:aegir 755',
        'files aegir:www-data 2770',
        'private aegir:www-data 2770',
        'wp-config.php aegir:www-data 440',
      ].join('\n'),
    );
    assert.equal(
      await sh('cd /var/aegir/platforms/wp/sites && readlink www.news.example.com news.example.org'),
      'news.example.com\nnews.example.com',
    );
    const settings = await bed().readFile('h1', `${sitePath}/wp-config.php`);
    const password = await dbPasswordFor(site.domain);
    assert.match(settings, new RegExp(`define\\('DB_PASSWORD', '${password}'\\);`));
    assert.match(settings, new RegExp(`define\\('DB_NAME', '${siteDatabaseName(site.domain)}'\\);`));
    assert.match(settings, /define\('DB_HOST', '10\.9\.9\.9:3307'\);/);
    assert.equal(JSON.stringify(result).includes(password), false, 'no password in the result');
    assert.match(
      await bed().readFile('h1', '/var/aegir/platforms/wp/wp-config.php'),
      /sites\/' \. \$sitefleet_host \. '\/wp-config\.php/,
    );
  });

  test('running it again finds the same state and reports no change', async () => {
    const h1 = serverOf(bed(), 'h1');
    const before = await sh(`cd /var/aegir/platforms/wp/sites && ls -la --time-style=full-iso . ${site.domain}`);
    assert.equal((await ensureSiteDir({ server: h1, site, platform: wordpress, dbServer })).changed, false);
    assert.equal(await sh(`cd /var/aegir/platforms/wp/sites && ls -la --time-style=full-iso . ${site.domain}`), before);
  });

  test('aliases follow the site: a dropped alias loses its link, a new one gets one', async () => {
    const h1 = serverOf(bed(), 'h1');
    const changed = { ...site, aliases: ['news.example.org', 'news.example.net'] };
    assert.equal((await ensureSiteDir({ server: h1, site: changed, platform: wordpress, dbServer })).changed, true);
    assert.equal(
      await sh('cd /var/aegir/platforms/wp/sites && find . -maxdepth 1 -type l | sort'),
      './news.example.net\n./news.example.org',
    );
  });

  test('a Drupal site gets a settings.php with its database and hash salt; a static site gets none', async () => {
    const h1 = serverOf(bed(), 'h1');
    await syncPlatform({ server: h1, platform: drupal });
    const drupalSite = { ...site, platform: 'drupal', aliases: [] };
    await ensureSiteDir({ server: h1, site: drupalSite, platform: drupal, dbServer });
    const settings = await bed().readFile('h1', '/var/aegir/platforms/drupal/sites/news.example.com/settings.php');
    assert.match(settings, /\$databases\['default'\]\['default'\] = \[/);
    assert.match(settings, /'port' => '3307'/);
    assert.match(settings, /\$settings\['hash_salt'\] = '[A-Za-z0-9_-]{43}';/);
    const lint = await bed().exec('h1', [
      'php',
      '-l',
      '/var/aegir/platforms/drupal/sites/news.example.com/settings.php',
    ]);
    assert.equal(lint.code, 0, lint.stdout);

    const staticPlatform = platformOf('static', 'static');
    await syncPlatform({ server: h1, platform: staticPlatform });
    const result = await ensureSiteDir({
      server: h1,
      site: { ...drupalSite, platform: 'static' },
      platform: staticPlatform,
    });
    assert.equal(result.settingsFile, null);
  });

  test('a site on a platform the server does not have is refused, non-retryably', async () => {
    const h1 = serverOf(bed(), 'h1');
    await assert.rejects(
      ensureSiteDir({ server: h1, site, platform: platformOf('nowhere', 'wordpress'), dbServer }),
      failure('BadInput', {
        nonRetryable: true,
        message: /server h1 has no platform nowhere .*create the platform before its sites/,
      }),
    );
    await assert.rejects(ensureSiteDir({ server: h1, site, platform: wordpress }), /needs a database server/);
  });

  test('removal keeps a backup tarball, removes the directory and its alias links, and is idempotent', async () => {
    const h1 = serverOf(bed(), 'h1');
    await sh(`echo upload > ${sitePath}/files/cat.jpg`);
    const removed = await removeSiteDir({ server: h1, site, platform: wordpress });
    assert.equal(removed.removed, true);
    assert.match(removed.backupPath ?? '', /^\/var\/aegir\/backups\/news\.example\.com-\d{8}T\d{6}Z\.tar\.gz$/);
    assert.equal(
      await sh(`tar -tzf ${removed.backupPath} | sort`),
      [
        'news.example.com/',
        'news.example.com/files/',
        'news.example.com/files/cat.jpg',
        'news.example.com/private/',
        'news.example.com/wp-config.php',
      ].join('\n'),
    );
    assert.equal(await sh('ls -A /var/aegir/platforms/wp/sites'), '');
    assert.deepEqual(await removeSiteDir({ server: h1, site, platform: wordpress }), {
      server: 'h1',
      removed: false,
      backupPath: null,
    });
  });
});
