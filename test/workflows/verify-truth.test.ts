/**
 * End to end on test hosts (issue 14): verification tells the truth.
 *
 * 1. A host key changed between two operations, with no pause (the worker's pooled connections and control masters
 *    still open), is noticed: the next operation is refused naming both fingerprints, nothing is written, and
 *    verification's ssh check reports it.
 * 2. A pack slave whose share is dead is flagged by its share check, within one verification: the master's sshd
 *    stopped, then its sshfs sessions ended too, then (separately) nfs-ganesha stopped.
 * 3. A verification that finds problems does not look like success: through the real API, `sitefleet verify` prints
 *    every failed check and exits 3, and the run carries SitefleetHealthy = false and a findings memo.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import type { Server as HttpServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { describe, test } from 'node:test';
import { createApi } from '../../api/app';
import { loadOrCreateToken } from '../../api/auth';
import { runCli } from '../../cli/program';
import { loadSettings } from '../../config/settings';
import { HEALTHY } from '../../domain/search-attributes';
import { openInventoryStore } from '../../inventory/open-store';
import type { Server } from '../../domain/model';
import { workflowIds, type WebGroup } from '../../domain/operations';
import type { PackShareResult } from '../../workflows/pack-share';
import type { VerifyReport } from '../../workflows/verify';
import { useFleet } from '../support/fleet';

const fleet = useFleet({
  hosts: [{ roles: ['web-nginx', 'nfs'] }, { roles: ['web-nginx'] }, { roles: ['web-nginx'] }],
});

function group(): WebGroup {
  const members = ['h1', 'h2', 'h3'].map((n) => fleet().server(n));
  const master = members[0] as Server;
  return {
    kind: 'pack',
    name: 'vt',
    members,
    codeReceivers: [master.name],
    share: {
      server: master,
      exportPath: '/var/aegir/platforms',
      clients: fleet().bed.facts.subnet,
      clientFlavour: 'sshfs',
    },
  };
}

let runs = 0;
async function verify(): Promise<{ report: VerifyReport; ms: number }> {
  const started = Date.now();
  const report = await fleet().run<VerifyReport>('VerifyClusterNodes', `verify-truth-${++runs}`, {
    group: group(),
    platforms: [],
    sites: [],
    dbServers: [],
  });
  return { report, ms: Date.now() - started };
}

/** The failed checks of a report, as `node check`, sorted. */
function failed(report: VerifyReport): string[] {
  return report.nodes.flatMap((n) => n.checks.filter((c) => !c.ok).map((c) => `${n.server} ${c.name}`)).sort();
}

function check(report: VerifyReport, node: string, name: string): { ok: boolean; detail: string } {
  const c = report.nodes.find((n) => n.server === node)?.checks.find((x) => x.name === name);
  assert.ok(c, `${node} has a ${name} check`);
  return c;
}

/** Every message along an error's cause chain. */
function messages(err: unknown): string {
  const out: string[] = [];
  for (let e = err as { message?: string; cause?: unknown } | undefined; e; e = e.cause as typeof e) {
    out.push(String(e.message));
  }
  return out.join(' <- ');
}

describe('verification tells the truth', () => {
  test('case 1: a host key changed between two operations is refused at once, naming both keys; nothing written', async () => {
    // Warm every pool: node-ssh connections to every member stay open after this run.
    await verify();
    const { previous, current } = await fleet().bed.changeHostKey('h2');
    assert.notEqual(previous, current);
    const fstabBefore = await fleet().bed.readFile('h2', '/etc/fstab');

    // The very next operation, which would write fstab, a key and known_hosts on h2.
    await assert.rejects(
      fleet().run<PackShareResult>('SetupPackShare', workflowIds.pack('vt'), { pack: group() }),
      (err: unknown) => {
        const text = messages(err);
        assert.match(text, /host key mismatch/, text);
        assert.ok(text.includes(previous) && text.includes(current), `both fingerprints named: ${text}`);
        assert.doesNotMatch(text, /@@@|matched moments ago/, 'in sitefleet words, not OpenSSH banners');
        return true;
      },
    );
    assert.equal(await fleet().bed.readFile('h2', '/etc/fstab'), fstabBefore, 'h2: fstab untouched');
    const key = await fleet().bed.exec('h2', ['test', '-e', '/root/.ssh/sitefleet-pack-vt'], { check: false });
    assert.notEqual(key.code, 0, 'h2: no pack key was made');

    // Verification, straight after: the ssh check asks h2 on a new connection.
    const { report } = await verify();
    const ssh = check(report, 'h2', 'ssh');
    assert.equal(ssh.ok, false, `h2 ssh: ${ssh.detail}`);
    assert.ok(ssh.detail.includes(previous) && ssh.detail.includes(current), ssh.detail);
    assert.equal(check(report, 'h3', 'ssh').ok, true);

    // Re-pin the new key (as an operator would after checking it on the console) for the rest of the file.
    const h2 = fleet().server('h2');
    fleet().servers.set('h2', { ...h2, ssh: { ...h2.ssh, hostKey: current } });
  });

  test('case 2: a dead share is flagged on exactly the slaves, within one verification', async () => {
    await fleet().run<PackShareResult>('SetupPackShare', workflowIds.pack('vt'), { pack: group() });
    const healthy = await verify();
    assert.deepEqual(failed(healthy.report), [], 'all checks pass with the share up');
    assert.match(check(healthy.report, 'h2', 'share-mount').detail, /reads the marker h1 just wrote/);

    // The master's sshd stopped (its sshfs sessions live on): the share cannot be confirmed, and a slave's
    // reconnect would fail. The master's own ssh check fails too: that is the truth about h1.
    await fleet().bed.stopService('h1', 'ssh');
    try {
      const stopped = await verify();
      assert.deepEqual(
        failed(stopped.report),
        ['h1 ssh', 'h2 share-mount', 'h3 share-mount'],
        JSON.stringify(stopped.report.nodes, null, 1),
      );
      for (const slave of ['h2', 'h3'])
        assert.match(check(stopped.report, slave, 'share-mount').detail, /^unconfirmed: /);
      assert.ok(stopped.ms < 60_000, `one verification, no 60-second timeout (took ${stopped.ms} ms)`);

      // And its sshfs sessions ended: reading through the mount now fails or hangs, and says so.
      await fleet().bed.exec('h1', ['pkill', '-f', '^sshd: '], { check: false });
      const dead = await verify();
      assert.deepEqual(failed(dead.report), ['h1 ssh', 'h2 share-mount', 'h3 share-mount']);
      for (const slave of ['h2', 'h3']) {
        assert.match(check(dead.report, slave, 'share-mount').detail, /^(error|hung|empty): /);
      }
      assert.ok(dead.ms < 60_000, `one verification, no 60-second timeout (took ${dead.ms} ms)`);
    } finally {
      await fleet().bed.startService('h1', 'ssh');
    }

    // sshfs reconnects by itself once sshd is back.
    let back = await verify();
    for (let i = 0; i < 10 && failed(back.report).length > 0; i++) {
      await new Promise((resolve) => setTimeout(resolve, 1000));
      back = await verify();
    }
    assert.deepEqual(failed(back.report), [], 'healthy again once sshd is back');

    // nfs-ganesha stopped: the slaves' NFS read of the export fails; nothing else does.
    await fleet().bed.stopService('h1', 'nfs-ganesha');
    try {
      const noNfs = await verify();
      assert.deepEqual(failed(noNfs.report), ['h2 nfs-export', 'h3 nfs-export']);
      assert.ok(noNfs.ms < 60_000, `one verification, no 60-second timeout (took ${noNfs.ms} ms)`);
    } finally {
      await fleet().bed.startService('h1', 'nfs-ganesha');
    }
  });

  test('case 3: a verification with problems exits 3 and prints every failed check; the run is marked unhealthy', async () => {
    // The real API in front of the fleet's Temporal and worker, with the bed's servers and the pack registered.
    const dataDir = mkdtempSync(join(tmpdir(), 'sitefleet-verify-truth-'));
    const settings = loadSettings({
      SITEFLEET_DATA_DIR: dataDir,
      TEMPORAL_NAMESPACE: fleet().env.namespace ?? 'default',
      SITEFLEET_TASK_QUEUE: fleet().worker.taskQueue,
      SITEFLEET_UI_URL: 'http://127.0.0.1:8233',
      // The bed's servers use the bed's client key: the API accepts key paths in its directory.
      ...(fleet().server('h1').ssh.keyPath
        ? { SITEFLEET_SSH_KEY_DIRS: dirname(fleet().server('h1').ssh.keyPath as string) }
        : {}),
    });
    const store = await openInventoryStore(settings);
    const { token } = loadOrCreateToken(settings.tokenFile);
    const api = createApi({ store, client: fleet().env.client, settings, token });
    const http = await new Promise<HttpServer>((resolve) => {
      const srv = api.app.listen(0, '127.0.0.1', () => resolve(srv));
    });
    const env = {
      SITEFLEET_API_URL: `http://127.0.0.1:${(http.address() as AddressInfo).port}`,
      SITEFLEET_TOKEN: token,
      SITEFLEET_DATA_DIR: dataDir,
    };
    const cli = async (...args: string[]): Promise<{ code: number; out: string }> => {
      const lines: string[] = [];
      const code = await runCli(args, {
        out: (l) => lines.push(l),
        err: (l) => lines.push(l),
        env,
        isTTY: false,
        confirm: () => Promise.resolve(true),
      });
      return { code, out: lines.join('\n') };
    };
    try {
      for (const name of ['h1', 'h2', 'h3']) {
        const r = await fetch(`${env.SITEFLEET_API_URL}/v1/servers`, {
          method: 'POST',
          headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
          body: JSON.stringify(fleet().server(name)),
        });
        assert.equal(r.status, 201, `server ${name}: ${await r.text()}`);
      }
      const share = group().share!;
      const added = await cli(
        'pack',
        'add',
        'vt',
        '--master',
        'h1',
        '--slaves',
        'h2,h3',
        '--clients',
        share.clients,
        '--client-flavour',
        'sshfs',
      );
      assert.equal(added.code, 0, added.out);

      const healthy = await cli('verify', 'pack', 'vt', '--poll-interval', '200');
      assert.equal(healthy.code, 0, healthy.out);
      assert.doesNotMatch(healthy.out, /PROBLEMS FOUND|\.\.\.$/m);

      await fleet().bed.stopService('h1', 'nfs-ganesha');
      try {
        const broken = await cli('verify', 'pack', 'vt', '--poll-interval', '200');
        assert.equal(broken.code, 3, broken.out);
        assert.match(broken.out, /COMPLETED/);
        assert.match(broken.out, /PROBLEMS FOUND \(2\):/);
        assert.match(broken.out, /^ {4}h2 nfs-export: nfs:\/\/.+/m);
        assert.match(broken.out, /^ {4}h3 nfs-export: nfs:\/\/.+/m);

        const run = await fleet().env.client.workflow.getHandle('verify/pack/vt').describe();
        assert.equal(run.typedSearchAttributes.get(HEALTHY), false, 'SitefleetHealthy = false on the run');
        const memo = (run.memo ?? {}) as { findings?: string };
        assert.match(String(memo.findings), /h2 nfs-export: /);
      } finally {
        await fleet().bed.startService('h1', 'nfs-ganesha');
      }

      // Case 4's guard: the pack's share is set up (its latest SetupPackShare completed), so removing the pack's
      // record is refused; --forget removes the record only.
      const refused = await cli('pack', 'remove', 'vt');
      assert.equal(refused.code, 1, refused.out);
      assert.match(refused.out, /pack vt has its share set up .*teardown-share vt/);
      assert.ok(await store.get('pack', 'vt'), 'the record stays');
      const forgot = await cli('pack', 'remove', 'vt', '--forget');
      assert.equal(forgot.code, 0, forgot.out);
      assert.equal(await store.get('pack', 'vt'), undefined);
    } finally {
      await new Promise<void>((resolve) => http.close(() => resolve()));
      http.closeAllConnections();
      await store.close();
      rmSync(dataDir, { recursive: true, force: true });
    }
  });
});
