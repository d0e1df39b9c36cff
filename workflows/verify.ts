/**
 * VerifyClusterNodes and ResyncCluster: find drift on every member, and repair it.
 */
import { workflowInfo } from '@temporalio/workflow';
import type { ResyncInput, VerifyNodesInput } from '../domain/operations';
import type { Server } from '../domain/model';
import type { NodeReport } from '../activities/verify-node';
import { probe, quick, transfer } from './activity-stubs';
import { settleBounded } from './fan-out';
import { describeFailure } from './failures';
import { expectGroup, parallelism, shareReaders } from './group';
import { Progress } from './progress';
import { tagRun } from './search';

export interface VerifyReport {
  group: string;
  kind: string;
  ok: boolean;
  checkedAt: string;
  nodes: NodeReport[];
}

/** The uid:gid most members have; members that differ fail the parity check. */
function markIdParity(nodes: NodeReport[]): void {
  const counts = new Map<string, number>();
  for (const n of nodes)
    if (n.aegirIds)
      counts.set(`${n.aegirIds.uid}:${n.aegirIds.gid}`, (counts.get(`${n.aegirIds.uid}:${n.aegirIds.gid}`) ?? 0) + 1);
  const majority = [...counts.entries()].sort((a, b) => b[1] - a[1])[0]?.[0];
  for (const n of nodes) {
    if (!n.aegirIds) continue;
    const mine = `${n.aegirIds.uid}:${n.aegirIds.gid}`;
    const ok = mine === majority;
    n.checks.push({ name: 'uid-gid-parity', ok, detail: ok ? `aegir ${mine}` : `aegir ${mine}, others ${majority}` });
    if (!ok) n.ok = false;
  }
}

/**
 * Checks every member in parallel — ssh with the pinned key, config test, drift against the source, the share,
 * uid/gid parity, database host resolution, and an HTTP check of every site (its full probe on one member, the
 * cheap health check on the others; see VerifyNodesInput.fullProbes) — and returns one report per node.
 * A node that cannot be reached is reported, not fatal: the workflow itself succeeds with the findings.
 */
export async function VerifyClusterNodes(input: VerifyNodesInput): Promise<VerifyReport> {
  const { group } = input;
  expectGroup(group, group.kind);
  tagRun({ group });
  const progress = new Progress(
    'VerifyClusterNodes',
    group.members.map((m) => m.name),
  );
  progress.phase('checking every member');
  const members = group.members;
  // Sites are spread over the members for their full probe; the other members run the cheap health check.
  const fullProbeDomains = (index: number): string[] | undefined =>
    input.fullProbes === 'every-node'
      ? undefined
      : input.sites.filter((_, j) => j % members.length === index).map((s) => s.domain);
  const settled = await settleBounded(members, parallelism(group), async (server: Server) => {
    progress.node(server.name, 'running', 'checks');
    const report = await probe.verifyNode({
      server,
      group,
      platforms: input.platforms,
      sites: input.sites,
      dbServers: input.dbServers,
      fullProbeDomains: fullProbeDomains(members.indexOf(server)),
    });
    progress.node(server.name, report.ok ? 'done' : 'failed', report.ok ? 'all checks pass' : 'problems found');
    return report;
  });
  const nodes = settled.map((s, i): NodeReport => {
    if (s.ok) return s.value;
    const server = group.members[i] as Server;
    progress.node(server.name, 'failed', 'unreachable', describeFailure(s.error));
    return { server: server.name, ok: false, checks: [{ name: 'ssh', ok: false, detail: describeFailure(s.error) }] };
  });
  markIdParity(nodes);
  progress.phase('done');
  return {
    group: group.name,
    kind: group.kind,
    ok: nodes.every((n) => n.ok),
    checkedAt: new Date(workflowInfo().startTime).toISOString(),
    nodes,
  };
}

export interface ResyncReport {
  group: string;
  ok: boolean;
  nodes: { server: string; ok: boolean; repaired: string[]; error?: string }[];
}

/**
 * Repairs drift on every member: platform code re-synced to the code receivers, share mounts on slaves, site
 * directories and vhosts (config tested, reloaded only when changed). Members are repaired independently: one
 * member that is down does not stop the others, and is reported.
 */
export async function ResyncCluster(input: ResyncInput): Promise<ResyncReport> {
  const { group, platforms, sites } = input;
  expectGroup(group, group.kind);
  tagRun({ group });
  const progress = new Progress(
    'ResyncCluster',
    group.members.map((m) => m.name),
  );
  const readers = new Set(shareReaders(group).map((s) => s.name));
  const settled = await settleBounded(group.members, parallelism(group), async (server: Server) => {
    const repaired: string[] = [];
    const receivesCode = group.codeReceivers.includes(server.name);
    if (readers.has(server.name) && group.share) {
      progress.node(server.name, 'running', 'share mount');
      const m = await quick.ensureShareMount({ slave: server, share: group.share, packName: group.name });
      if (m.changed) repaired.push('share mount');
    }
    if (receivesCode) {
      for (const platform of platforms) {
        progress.node(server.name, 'running', `sync ${platform.name}`);
        const s = await transfer.syncPlatform({ server, platform, dryRun: false });
        if (s.filesChanged > 0) repaired.push(`${platform.name}: ${s.filesChanged} file(s)`);
      }
    }
    for (const site of sites) {
      const platform = platforms.find((p) => p.name === site.platform);
      if (!platform) continue;
      if (receivesCode) {
        const dbServer = input.dbServers.find((d) => d.name === site.dbServer);
        const d = await quick.ensureSiteDir({ server, site, platform, dbServer });
        if (d.changed) repaired.push(`site dir ${site.domain}`);
      }
      const v = await quick.installVhost({ server, site, platform });
      if (v.changed) repaired.push(`vhost ${site.domain}`);
    }
    progress.node(server.name, 'done', repaired.length > 0 ? `repaired ${repaired.length}` : 'in line');
    return repaired;
  });
  const nodes = settled.map((s, i) => {
    const server = (group.members[i] as Server).name;
    return s.ok
      ? { server, ok: true, repaired: s.value }
      : { server, ok: false, repaired: [], error: describeFailure(s.error) };
  });
  return { group: group.name, ok: nodes.every((n) => n.ok), nodes };
}
