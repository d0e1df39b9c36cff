/**
 * One member's health report for VerifyClusterNodes: every check runs, a failing check is a finding in the report
 * (not an error), and only an unreachable node makes the activity fail.
 */
import { z } from 'zod';
import { metricMeter } from '@temporalio/activity';
import { recordCheck } from '../metrics/sitefleet';
import { platformSchema, serverSchema, siteSchema, type Platform, type Server, type Site } from '../domain/model';
import type { WebGroup } from '../domain/operations';
import { siteHealthSpec, siteProbeSpec } from '../domain/site-probe';
import { activityCancellationSignal, heartbeatProgress } from './support/activity-context';
import { parseInput } from './support/activity-input';
import { aegirIdsOf, probeSite, resolveOn } from './checks';

import { checkNfsExport } from './nfs-export';
import { checkShareRead, inspectShareMount, type ShareMountInput } from './nfs-mount';
import { uploadsMountPoint, uploadsShareName } from '../domain/paths';
import { checkPlatformVisible, syncPlatform } from './platform';
import { verifiedHostKey } from './transport/ssh';
import { runConfigTest } from './web-server';
import { messageOf } from '../common/error-message';
import type { NodeCheck, NodeReport } from '../domain/verify-report';

export type { NodeCheck, NodeReport } from '../domain/verify-report';

export interface VerifyNodeInput {
  server: Server;
  group: WebGroup;
  platforms: Platform[];
  sites: Site[];
  dbServers: Server[];
  /**
   * Sites (by domain) whose full probe runs on this node; every other site gets the cheap health check
   * (domain/site-probe.ts). Undefined: the full probe for every site.
   */
  fullProbeDomains?: string[];
}

/**
 * Checks one member: ssh with the pinned key (failure: the activity fails, the node is unreachable), config test,
 * aegir ids, drift of every platform against its source (code receivers; rsync dry run), the share mount and the
 * platforms seen through it (a pack's slaves), a cluster's uploads share read through its mount, resolution of every database host, and an HTTP check of every site
 * through this node: the full probe, judged as the install workflows judge it, for `fullProbeDomains` (all sites
 * when undefined), the cheap health check for the rest (domain/site-probe.ts).
 */
export async function verifyNode(input: VerifyNodeInput): Promise<NodeReport> {
  const signal = activityCancellationSignal();
  const server = parseInput(serverSchema, input.server, 'server');
  const platforms = parseInput(z.array(platformSchema), input.platforms, 'platforms');
  const sites = parseInput(z.array(siteSchema), input.sites, 'sites');
  const dbServers = parseInput(z.array(serverSchema), input.dbServers, 'dbServers');
  const group = input.group;
  const checks: NodeCheck[] = [];
  const report: NodeReport = { server: server.name, ok: true, checks };

  // Inside the activity this asks the server for its key on a new connection (activities/ssh.ts): a pooled
  // connection would report a key the server may no longer have, and reachability it may no longer offer.
  const key = await verifiedHostKey(server);
  checks.push({ name: 'ssh', ok: true, detail: `new connection accepted, host key ${key.fingerprint} as pinned` });

  const check = async (name: string, fn: () => Promise<{ ok: boolean; detail: string }>): Promise<void> => {
    heartbeatProgress({ server: server.name, check: name });
    try {
      const { ok, detail } = await fn();
      checks.push({ name, ok, detail });
      recordCheck(metricMeter, server.name, name, ok);
    } catch (err) {
      checks.push({ name, ok: false, detail: messageOf(err) });
      recordCheck(metricMeter, server.name, name, false);
    }
  };

  await check('config-test', async () => {
    const t = await runConfigTest(server, signal);
    return { ok: t.ok, detail: t.ok ? 'passes' : t.output };
  });
  await check('aegir-ids', async () => {
    const ids = await aegirIdsOf(server, signal);
    report.aegirIds = { uid: ids.uid, gid: ids.gid };
    return { ok: true, detail: `${ids.user} ${ids.uid}:${ids.gid}` };
  });

  const receivesCode = group.codeReceivers.includes(server.name);
  if (receivesCode) {
    for (const platform of platforms) {
      await check(`drift:${platform.name}`, async () => {
        const s = await syncPlatform({ server, platform, dryRun: true });
        return s.filesChanged === 0
          ? { ok: true, detail: 'in line with the source' }
          : { ok: false, detail: `${s.filesChanged} difference(s): ${s.itemized.slice(0, 5).join('; ')}` };
      });
    }
  } else if (group.share) {
    const share = group.share;
    let shareReadable = true;
    await check('share-mount', async () => {
      const r = await readThroughMount({ slave: server, share, packName: group.name });
      shareReadable = r.ok;
      return r;
    });
    if (share.server.nfs) {
      // With the sshfs flavour the mount does not go through NFS: read the export itself, or an NFS server that is
      // down would go unnoticed.
      await check('nfs-export', async () => {
        const r = await checkNfsExport({ server, share });
        return { ok: r.ok, detail: r.detail };
      });
    }
    for (const platform of platforms) {
      await check(`visible:${platform.name}`, async () => {
        if (!shareReadable) return { ok: false, detail: 'not looked at: the share is not readable (see share-mount)' };
        const v = await checkPlatformVisible({ server, platform });
        return { ok: v.visible, detail: v.detail };
      });
    }
  }

  const uploads = group.kind === 'cluster' ? group.uploads : undefined;
  if (uploads && uploads.server.name !== server.name) {
    // A member that does not read the uploads share keeps new uploads on its own disk, where no other member sees
    // them (and a later mount hides them): the same read through the mount as a pack slave's share.
    await check('uploads-mount', async () =>
      readThroughMount({
        slave: server,
        share: uploads,
        packName: uploadsShareName(group.name),
        mountPoint: uploadsMountPoint(server, group.name),
      }),
    );
  }

  const usedDbServers = new Set(sites.map((s) => s.dbServer).filter((n): n is string => n !== undefined));
  for (const db of dbServers.filter((d) => usedDbServers.has(d.name))) {
    const name = db.address ?? db.host;
    await check(`db-resolution:${name}`, async () => resolveOn(server, name, undefined, signal));
  }

  const platformNames = new Set(platforms.map((p) => p.name));
  const fullProbes = input.fullProbeDomains === undefined ? null : new Set(input.fullProbeDomains);
  for (const site of sites.filter((s) => platformNames.has(s.platform))) {
    await check(`probe:${site.domain}`, async () => {
      const platform = platforms.find((pl) => pl.name === site.platform) as Platform;
      const full = fullProbes === null || fullProbes.has(site.domain);
      const spec = full ? siteProbeSpec(site, platform) : siteHealthSpec(site, platform);
      const p = await probeSite({ server, site, platform, ...spec });
      const health = !full && spec.path !== siteProbeSpec(site, platform).path;
      // A passing probe's detail stays short (the check's name holds the site, the report the node): at 1,000 sites
      // on 8 members these are 8,000 lines of the workflow's history. A failing one keeps the probe's full detail.
      const detail = p.ok ? `answers ${p.status}${full ? ' (full probe)' : ''}` : p.detail;
      return { ok: p.ok, detail: health ? `health check: ${detail}` : detail };
    });
  }

  report.ok = checks.every((c) => c.ok);
  return report;
}

/**
 * A share as a slave sees it: mounted from the right source with its fstab line, and readable: a marker the share
 * server writes now is read through the mount with a timeout (mounted is not readable: a hung or erroring mount,
 * or an empty cache, is named as such).
 */
async function readThroughMount(mount: ShareMountInput): Promise<{ ok: boolean; detail: string }> {
  const m = await inspectShareMount(mount);
  if (!m.mounted || !m.fstab) {
    return { ok: false, detail: `mounted: ${m.mounted} (${m.source ?? 'nothing'}), fstab line: ${m.fstab}` };
  }
  const r = await checkShareRead(mount);
  return {
    ok: r.ok,
    detail: r.ok ? `${m.source} on ${m.mountPoint} (${m.fstype}), ${r.detail}` : `${r.state}: ${r.detail}`,
  };
}
