import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { siteDatabaseName, sqlIdentifier, sqlString } from '../../activities/database';
import { dbPasswordFor, siteSaltsFor, wordpressAdminPasswordFor } from '../../activities/site-secrets';

const dir = mkdtempSync(join(tmpdir(), 'sitefleet-secrets-'));
after(() => rmSync(dir, { recursive: true, force: true }));

describe('per-site secrets derived from the worker secret', () => {
  test('the worker secret file is created on first use, readable by its owner only', async () => {
    process.env.SITEFLEET_SECRET_FILE = join(dir, 'a', 'worker-secret');
    await dbPasswordFor('example.com');
    const info = statSync(process.env.SITEFLEET_SECRET_FILE);
    assert.equal(info.mode & 0o777, 0o600);
    assert.match(readFileSync(process.env.SITEFLEET_SECRET_FILE, 'utf8'), /^[0-9a-f]{64}\n$/);
  });

  test('the same domain gives the same password every time; another domain or another secret does not', async () => {
    process.env.SITEFLEET_SECRET_FILE = join(dir, 'a', 'worker-secret');
    const first = await dbPasswordFor('example.com');
    assert.equal(await dbPasswordFor('example.com'), first);
    assert.match(first, /^[A-Za-z0-9_-]{32}$/);
    assert.notEqual(await dbPasswordFor('example.org'), first);
    assert.notEqual(await wordpressAdminPasswordFor('example.com'), first);
    process.env.SITEFLEET_SECRET_FILE = join(dir, 'b', 'worker-secret');
    assert.notEqual(await dbPasswordFor('example.com'), first);
  });

  test('WordPress gets its eight keys and salts, all different', async () => {
    process.env.SITEFLEET_SECRET_FILE = join(dir, 'a', 'worker-secret');
    const salts = await siteSaltsFor('example.com', 'wordpress');
    assert.equal(salts.length, 8);
    assert.equal(new Set(salts.map((s) => s.value)).size, 8);
    assert.deepEqual(
      (await siteSaltsFor('example.com', 'drupal')).map((s) => s.name),
      ['HASH_SALT'],
    );
  });

  test('refuses a domain that is not one', async () => {
    await assert.rejects(dbPasswordFor('not a domain'), /site domain/);
  });
});

describe('database names and SQL quoting', () => {
  test('names are derived from the domain, distinct for look-alike domains, and fit MySQL limits', () => {
    assert.match(siteDatabaseName('example.com'), /^example_com_[0-9a-f]{8}$/);
    assert.notEqual(siteDatabaseName('a-b.com'), siteDatabaseName('a.b.com'));
    const long = siteDatabaseName(`${'x'.repeat(60)}.example.com`);
    assert.ok(long.length <= 31, long);
  });

  test('identifiers are backticked and strings quoted; backslashes and control characters are refused', () => {
    assert.equal(sqlIdentifier('we`ird'), '`we``ird`');
    assert.equal(sqlString("o'brien"), "'o''brien'");
    assert.throws(() => sqlString('a\\b'), /backslashes/);
    assert.throws(() => sqlString('a\nb'), /control/);
  });
});
