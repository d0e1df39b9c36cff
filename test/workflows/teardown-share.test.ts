/**
 * End to end on test hosts (issue 14, case 4): TeardownPackShare undoes SetupPackShare. After it, every slave's
 * fstab, mounts, ssh keys and known_hosts, the master's authorized_keys, its nfs-ganesha config and the export
 * directory are as they were before the setup. Refused while platforms are on the pack, unless forced.
 * Also (issue 14, 5): a SetupPackShare cancelled half-way ends CANCELLED, after undoing what it made.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { WorkflowFailedError } from '@temporalio/client';
import { CancelledFailure } from '@temporalio/common';
import { progressQuery, type OperationProgress } from '../../domain/progress';
import type { Server } from '../../domain/model';
import { workflowIds, type WebGroup } from '../../domain/operations';
import type { PackShareResult, PackShareTeardownResult } from '../../workflows/pack-share';
import type { VerifyReport } from '../../workflows/verify';
import { useFleet } from '../support/fleet';

const fleet = useFleet({
  hosts: [{ roles: ['web-nginx', 'nfs'] }, { roles: ['web-nginx'] }, { roles: ['web-nginx'] }],
});

function group(): WebGroup {
  const members = ['h1', 'h2', 'h3'].map((n) => fleet().server(n));
  return {
    kind: 'pack',
    name: 'td',
    members,
    codeReceivers: ['h1'],
    share: {
      server: members[0] as Server,
      exportPath: '/var/aegir/platforms',
      clients: fleet().bed.facts.subnet,
      clientFlavour: 'sshfs',
    },
  };
}

/** Everything SetupPackShare touches, as text, per host. */
async function snapshot(): Promise<Record<string, string>> {
  const sh = async (host: string, script: string): Promise<string> =>
    (await fleet().bed.exec(host, ['sh', '-c', script], { check: false })).stdout;
  const out: Record<string, string> = {};
  const home = (await sh('h1', 'getent passwd aegir | cut -d: -f6')).trim();
  out['h1 ganesha.conf'] = await sh('h1', 'cat /etc/ganesha/ganesha.conf');
  out['h1 authorized_keys'] = await sh('h1', `cat ${home}/.ssh/authorized_keys 2>/dev/null || echo none`);
  out['h1 export dir'] = await sh('h1', 'ls -A /var/aegir/platforms');
  for (const slave of ['h2', 'h3']) {
    out[`${slave} fstab`] = await sh(slave, 'cat /etc/fstab');
    out[`${slave} mounts`] = await sh(slave, 'findmnt -n -o SOURCE,TARGET,FSTYPE -R /var/aegir || true');
    out[`${slave} root ssh`] = await sh(slave, 'ls -A /root/.ssh 2>/dev/null || true');
    out[`${slave} known_hosts`] = await sh(slave, 'cat /root/.ssh/sitefleet-known_hosts 2>/dev/null || echo none');
  }
  return out;
}

describe('TeardownPackShare', () => {
  test('case 4: after teardown, fstab, mounts, keys and exports are as before setup; refused while platforms are on the pack', async () => {
    const before = await snapshot();
    await fleet().run<PackShareResult>('SetupPackShare', workflowIds.pack('td'), { pack: group() });
    // A verification writes the share check's markers into the export: the teardown removes them too.
    await fleet().run<VerifyReport>('VerifyClusterNodes', 'teardown-verify', {
      group: group(),
      platforms: [],
      sites: [],
      dbServers: [],
    });
    const setUp = await snapshot();
    assert.notEqual(setUp['h2 fstab'], before['h2 fstab'], 'the setup changed the slaves (the test sees it)');
    assert.match(setUp['h3 mounts'] ?? '', /fuse\.sshfs/);
    assert.match(setUp['h1 ganesha.conf'] ?? '', /sitefleet:pack:td/);

    // Platforms on the pack: refused, nothing changed.
    await assert.rejects(
      fleet().run('TeardownPackShare', workflowIds.pack('td'), { pack: group(), platforms: ['wp'] }),
      (err: unknown) =>
        err instanceof WorkflowFailedError && /still has platforms \(wp\).*force/.test(String(err.cause?.message)),
    );
    assert.deepEqual(await snapshot(), setUp, 'a refused teardown changes nothing');

    const down = await fleet().run<PackShareTeardownResult>('TeardownPackShare', workflowIds.pack('td'), {
      pack: group(),
      platforms: [],
    });
    assert.deepEqual(down.unmountedFrom.sort(), ['h2', 'h3']);
    assert.equal(down.changed, true);
    assert.deepEqual(await snapshot(), before, 'everything as before the setup');

    // Again: nothing left to remove. Forced with platforms: runs (here, with nothing to do).
    const again = await fleet().run<PackShareTeardownResult>('TeardownPackShare', workflowIds.pack('td'), {
      pack: group(),
      platforms: ['wp'],
      force: true,
    });
    assert.equal(again.changed, false);
    assert.deepEqual(await snapshot(), before);
  });

  test('a cancelled SetupPackShare ends CANCELLED, says so, and leaves everything as before', async () => {
    const before = await snapshot();
    const handle = await fleet().start('SetupPackShare', 'pack/td-cancel', { pack: { ...group(), name: 'tdc' } });
    // Cancel once the export is made (the mounts are being made): there is something to undo.
    for (let i = 0; i < 300; i++) {
      const p = await handle.query<OperationProgress>(progressQuery).catch(() => undefined);
      if (p && p.phase === 'mount on every slave') break;
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    await handle.cancel();
    await assert.rejects(handle.result(), (err: unknown) => {
      assert.ok(err instanceof WorkflowFailedError, String(err));
      assert.ok(err.cause instanceof CancelledFailure, `cancelled, not failed: ${String(err.cause)}`);
      return true;
    });
    assert.equal((await handle.describe()).status.name, 'CANCELLED');
    // And it says so, where the CLI and the API show it: the final phase of its progress.
    const final = await handle.query<OperationProgress>(progressQuery);
    assert.match(final.phase, /^cancelled during "[^"]+"; every completed step was undone$/, final.phase);
    assert.deepEqual(await snapshot(), before, 'the undo removed what the cancelled setup made');
  });
});
