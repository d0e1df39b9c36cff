import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { checkAegirIdParity, checkResolution, inspectServer, probeSite, readAegirIds } from '../../activities/checks';
import { ensureWebConfig } from '../../activities/web-server';
import { siteSchema } from '../../domain/model';
import { DEFAULT_SERVER_BODY } from '../../testbed';
import { useTestBed } from '../support/testbed';
import { failure, serverOf, useWorkerEnvironment } from './bed-servers';

useWorkerEnvironment();
const bed = useTestBed({
  hosts: [{ roles: ['web-nginx'] }, { roles: [] }, { roles: [], aegirUid: 1600, aegirGid: 1601 }],
});
const site = siteSchema.parse({ domain: 'unknown.example.com', platform: 'p' });

describe('aegir uid/gid', () => {
  test('reads the ids on a host', async () => {
    assert.deepEqual(await readAegirIds({ server: serverOf(bed(), 'h1') }), {
      server: 'h1',
      user: 'aegir',
      uid: 1500,
      gid: 1500,
    });
  });

  test('parity holds across equal hosts and names the odd one out', async () => {
    const [h1, h2, h3] = ['h1', 'h2', 'h3'].map((n) => serverOf(bed(), n));
    assert.equal((await checkAegirIdParity({ servers: [h1!, h2!] })).consistent, true);
    const odd = await checkAegirIdParity({ servers: [h1!, h2!, h3!] });
    assert.deepEqual([odd.consistent, odd.mismatched], [false, ['h3']]);
    await assert.rejects(
      checkAegirIdParity({ servers: [h1!, h2!, h3!], enforce: true }),
      failure('UidGidMismatch', { nonRetryable: true, message: /h1=1500:1500, h2=1500:1500, h3=1600:1601/ }),
    );
  });
});

describe('name resolution on a node', () => {
  test("resolves a name through the node's own resolver, and checks the expected address", async () => {
    const h2 = serverOf(bed(), 'h2');
    await bed().exec('h2', ['sh', '-c', `echo '${bed().ip('h1')} db.internal' >> /etc/hosts`]);
    const ok = await checkResolution({ server: h2, name: 'db.internal', expectedAddress: bed().ip('h1') });
    assert.deepEqual([ok.ok, ok.addresses], [true, [bed().ip('h1')]]);
    await assert.rejects(
      checkResolution({ server: h2, name: 'db.internal', expectedAddress: bed().ip('h3') }),
      failure('ResolutionMismatch', {
        nonRetryable: true,
        message: new RegExp(`db.internal resolves to ${bed().ip('h1')} on h2, not ${bed().ip('h3')}`),
      }),
    );
  });

  test('a name that does not resolve is a non-retryable ResolutionMismatch, or a finding when not enforced', async () => {
    const h2 = serverOf(bed(), 'h2');
    await assert.rejects(
      checkResolution({ server: h2, name: 'nowhere.internal' }),
      failure('ResolutionMismatch', { nonRetryable: true, message: /does not resolve on h2/ }),
    );
    const finding = await checkResolution({ server: h2, name: 'nowhere.internal', enforce: false });
    assert.equal(finding.ok, false);
  });
});

describe('HTTP probe from the controller', () => {
  test("reports the status and body of the node for the site's Host header", async () => {
    const probe = await probeSite({ server: serverOf(bed(), 'h1'), site });
    assert.deepEqual([probe.ok, probe.status], [false, 404]);
    assert.match(probe.detail, new RegExp(DEFAULT_SERVER_BODY));
    const accepted = await probeSite({
      server: serverOf(bed(), 'h1'),
      site,
      expectStatus: [404],
      expectBodyMarker: DEFAULT_SERVER_BODY,
    });
    assert.equal(accepted.ok, true);
  });

  test('a node that does not answer is a failed probe, not an error', async () => {
    const probe = await probeSite({ server: serverOf(bed(), 'h2'), site, timeoutMs: 2000 });
    assert.deepEqual([probe.ok, probe.status], [false, 0]);
    assert.match(probe.detail, /no response from http:\/\/.*ECONNREFUSED/);
  });
});

describe('inspectServer (VerifyServer)', () => {
  test('reports the pinned key, the web server, its include of the vhost dir, rsync and the aegir ids', async () => {
    const h1 = serverOf(bed(), 'h1');
    const report = await inspectServer({ server: h1 });
    assert.deepEqual(
      { ...report, http: report.http && { ...report.http, output: '' } },
      {
        server: 'h1',
        ok: true,
        problems: [],
        hostKey: h1.ssh.hostKey,
        http: { type: 'nginx', installed: true, configTestOk: true, vhostDirIncluded: true, output: '' },
        rsync: true,
        aegir: { uid: 1500, gid: 1500 },
      },
    );
  });

  test('names what is missing, and ensureWebConfig repairs the include', async () => {
    const h1 = serverOf(bed(), 'h1');
    await bed().exec('h1', ['rm', '/etc/nginx/conf.d/sitefleet.conf']);
    const broken = await inspectServer({ server: h1 });
    assert.equal(broken.ok, false);
    assert.match(
      broken.problems.join('\n'),
      /nginx on h1 does not include \/var\/aegir\/config\/server_h1\/nginx\/vhost\.d/,
    );
    assert.equal((await ensureWebConfig({ server: h1 })).changed, true);
    assert.equal((await inspectServer({ server: h1 })).ok, true);
  });

  test('a host without the aegir user is not ready, non-retryably', async () => {
    const h2 = serverOf(bed(), 'h2');
    await bed().exec('h2', ['userdel', 'aegir']);
    await assert.rejects(
      readAegirIds({ server: h2 }),
      failure('ServerNotReady', { nonRetryable: true, message: /server h2 has no user aegir/ }),
    );
    assert.match((await inspectServer({ server: h2 })).problems.join('\n'), /no user aegir/);
  });
});
