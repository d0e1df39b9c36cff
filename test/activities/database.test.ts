import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import {
  checkDatabaseLogin,
  dropDatabase,
  ensureDatabase,
  inspectDatabase,
  siteDatabaseName,
} from '../../activities/database';
import { dbPasswordFor } from '../../activities/site-secrets';
import { siteSchema } from '../../domain/model';
import { useTestBed } from '../support/testbed';
import { serverOf, useWorkerEnvironment } from './bed-servers';

useWorkerEnvironment();
const bed = useTestBed({ hosts: [{ roles: ['db'] }, { roles: [] }, { roles: [] }] });
const site = siteSchema.parse({ domain: 'shop.example.com', platform: 'wp', dbServer: 'h1' });
const database = siteDatabaseName(site.domain);

async function sql(statement: string): Promise<string> {
  return (await bed().exec('h1', ['mysql', '--batch', '--skip-column-names'], { input: `${statement}\n` })).stdout;
}

describe('site databases', () => {
  test('creates the database and one account per web node with all privileges on it, and nothing else', async () => {
    const [h1, h2, h3] = ['h1', 'h2', 'h3'].map((n) => serverOf(bed(), n));
    const result = await ensureDatabase({ dbServer: h1!, site, clients: [h2!.host, h3!.host] });
    assert.deepEqual(result, {
      server: 'h1',
      database,
      user: database,
      databaseExists: true,
      userExists: true,
      hosts: [h2!.host, h3!.host].sort(),
      addedHosts: [h2!.host, h3!.host],
      removedHosts: [],
      createdDatabase: true,
    });
    assert.equal(JSON.stringify(result).includes(await dbPasswordFor(site.domain)), false, 'no password in the result');
    assert.equal((await sql(`SHOW DATABASES LIKE '${database}'`)).trim(), database);
    const grants = await sql(`SHOW GRANTS FOR '${database}'@'${h2!.host}'`);
    assert.match(
      grants,
      new RegExp(
        `GRANT ALL PRIVILEGES ON \`${database}\`\\.\\* TO \`${database}\`@\`${h2!.host.replace(/\./g, '\\.')}\``,
      ),
    );
    assert.doesNotMatch(grants, /ON \*\.\*.*ALL PRIVILEGES/, 'no global privileges');
  });

  test('every web node logs in with the derived password, which the worker recomputes', async () => {
    const [h1, h2, h3] = ['h1', 'h2', 'h3'].map((n) => serverOf(bed(), n));
    for (const web of [h2!, h3!]) {
      const login = await checkDatabaseLogin({ server: web, dbServer: h1!, site });
      assert.equal(login.ok, true, login.detail);
    }
  });

  test('running it again finds the same state; a removed web node loses its account', async () => {
    const [h1, h2, h3] = ['h1', 'h2', 'h3'].map((n) => serverOf(bed(), n));
    const again = await ensureDatabase({ dbServer: h1!, site, clients: [h2!.host, h3!.host] });
    assert.deepEqual([again.createdDatabase, again.addedHosts, again.removedHosts], [false, [], []]);
    const shrunk = await ensureDatabase({ dbServer: h1!, site, clients: [h2!.host] });
    assert.deepEqual(shrunk.removedHosts, [h3!.host]);
    assert.equal((await sql(`SELECT Host FROM mysql.user WHERE User = '${database}'`)).trim(), h2!.host);
    assert.equal((await checkDatabaseLogin({ server: h3!, dbServer: h1!, site })).ok, false);
  });

  test('the password never appears in the process list or the command line', async () => {
    const [h1, h2] = ['h1', 'h2'].map((n) => serverOf(bed(), n));
    const password = await dbPasswordFor(site.domain);
    const watching = bed().exec('h1', ['sh', '-c', 'for i in $(seq 1 40); do ps -eo args; sleep 0.025; done']);
    await ensureDatabase({ dbServer: h1!, site, clients: [h2!.host] });
    assert.equal((await watching).stdout.includes(password), false);
  });

  test('inspection reports what exists, and the compensation drops exactly what it is told to', async () => {
    const h1 = serverOf(bed(), 'h1');
    const state = await inspectDatabase({ dbServer: h1, site });
    assert.deepEqual([state.databaseExists, state.userExists], [true, true]);
    const keepData = await dropDatabase({ dbServer: h1, site, dropDatabase: false, dropUser: true });
    assert.equal(keepData.droppedDatabase, false);
    assert.equal((await sql(`SHOW DATABASES LIKE '${database}'`)).trim(), database);
    assert.equal((await sql(`SELECT COUNT(*) FROM mysql.user WHERE User = '${database}'`)).trim(), '0');
    await dropDatabase({ dbServer: h1, site, dropDatabase: true, dropUser: true });
    assert.equal((await sql(`SHOW DATABASES LIKE '${database}'`)).trim(), '');
    const twice = await dropDatabase({ dbServer: h1, site, dropDatabase: true, dropUser: true });
    assert.deepEqual([twice.droppedDatabase, twice.droppedHosts], [false, []]);
  });

  test('refuses a client that is not an address, and a server without a db service', async () => {
    const [h1, h2] = ['h1', 'h2'].map((n) => serverOf(bed(), n));
    await assert.rejects(ensureDatabase({ dbServer: h1!, site, clients: ["10.0.0.1' OR 1=1"] }), /clients/);
    await assert.rejects(ensureDatabase({ dbServer: h2!, site, clients: ['10.0.0.1'] }), /has no db service/);
  });
});
