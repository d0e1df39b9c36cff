/**
 * VerifyClusterNodes and ResyncCluster: find drift on every member, and repair it.
 */
import { badInput } from '../common/failures';
import { patched, workflowInfo } from '@temporalio/workflow';
import type { ResyncInput, VerifyNodesInput } from '../domain/operations';
import type { Server } from '../domain/model';
import type { NodeReport, VerifyReport } from '../domain/verify-report';

export type { VerifyReport } from '../domain/verify-report';
import { perServer, probe, quick, long } from './activity-stubs';
import { rollOutCode } from './rolling';
import { settleBounded } from '../common/settle';
import { describeFailure } from './failures';
import { codeReceivers, expectGroup, parallelism, shareReaders, siteUploads, SITE_BATCH_PATCH } from './group';
import { uploadsMountPoint, uploadsShareName } from '../domain/paths';
import { Progress } from './progress';
import { markHealth, tagRun } from './search';

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
 * The load balancer's view of each member: every enabled site's backend must list the member, and haproxy's own
 * health check of the site (its health script) must find it UP. One `show stat` on the LB's admin socket.
 */
async function markLoadBalancerView(input: VerifyNodesInput, nodes: NodeReport[]): Promise<void> {
  const lb = input.group.loadBalancer as Server;
  const enabled = input.sites.filter((s) => s.status === 'enabled').map((s) => s.domain);
  let view: { backend: string; server: string; status: string; check: string }[];
  try {
    view = await probe.inspectLoadBalancer({ lb, cluster: input.group.name });
  } catch (err) {
    for (const n of nodes) {
      n.checks.push({ name: 'load-balancer', ok: false, detail: `${lb.name}: ${describeFailure(err)}` });
      n.ok = false;
    }
    return;
  }
  for (const n of nodes) {
    const problems: string[] = [];
    for (const domain of enabled) {
      const row = view.find((v) => v.backend === `sitefleet_${input.group.name}_${domain}` && v.server === n.server);
      if (!row) problems.push(`${domain}: not in the backend`);
      else if (row.status !== 'UP') problems.push(`${domain}: ${row.status}${row.check ? ` (${row.check})` : ''}`);
    }
    const ok = problems.length === 0;
    n.checks.push({
      name: 'load-balancer',
      ok,
      detail: ok ? `${lb.name}: UP for ${enabled.length} site(s)` : `${lb.name}: ${problems.join('; ')}`,
    });
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
  if (input.fullProbes !== undefined && input.fullProbes !== 'one-node' && input.fullProbes !== 'every-node') {
    throw badInput(`fullProbes: must be "one-node" or "every-node", got ${JSON.stringify(input.fullProbes)}`);
  }
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
    const report = await perServer.verifyNode({
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
  if (group.loadBalancer) await markLoadBalancerView(input, nodes);
  const ok = nodes.every((n) => n.ok);
  markHealth(
    ok,
    nodes.flatMap((n) => n.checks.filter((c) => !c.ok).map((c) => `${n.server} ${c.name}: ${c.detail}`)),
  );
  progress.phase('done');
  return {
    group: group.name,
    kind: group.kind,
    ok,
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
 * Repairs drift on every member: share mounts on slaves, platform code re-synced to the code receivers, site
 * directories and vhosts (config tested, reloaded only when changed). Members are repaired independently: one
 * member that is down does not stop the others, and is reported.
 *
 * The code goes to all receivers in one activity per platform (one activity task instead of one per member: most
 * of the cost of a resync that finds nothing to do); a member whose push failed there gets its own push, with
 * the activity's retries, before it is reported.
 */
export async function ResyncCluster(input: ResyncInput): Promise<ResyncReport> {
  const { group, platforms, sites } = input;
  expectGroup(group, group.kind);
  tagRun({ group });
  const members = group.members;
  const progress = new Progress(
    'ResyncCluster',
    members.map((m) => m.name),
  );
  const repaired = new Map<string, string[]>(members.map((m) => [m.name, []]));
  const failed = new Map<string, string>();
  const noteFailure = (server: string, error: string): void => {
    failed.set(server, error);
    progress.node(server, 'failed', 'not repaired', error);
  };
  const healthy = (servers: Server[]): Server[] => servers.filter((m) => !failed.has(m.name));

  // Share mounts of a pack's slaves.
  const share = group.share;
  const readers = share ? shareReaders(group) : [];
  const mounts = await settleBounded(readers, parallelism(group), async (server: Server) => {
    progress.node(server.name, 'running', 'share mount');
    const m = await quick.ensureShareMount({ slave: server, share: share!, packName: group.name });
    if (m.changed) repaired.get(server.name)?.push('share mount');
  });
  mounts.forEach((s, i) => {
    if (!s.ok) noteFailure((readers[i] as Server).name, describeFailure(s.error));
  });

  // A cluster's uploads share: mounted on every member, a directory per site on the files server. Resync never
  // pushes nor deletes uploads (activities/platform.ts platformSyncFilters); it only puts the mounts back.
  const uploads = group.kind === 'cluster' ? group.uploads : undefined;
  if (uploads) {
    const uploadReaders = members.filter((m) => m.name !== uploads.server.name);
    const uploadMounts = await settleBounded(uploadReaders, parallelism(group), async (server: Server) => {
      progress.node(server.name, 'running', 'uploads mount');
      const m = await quick.ensureShareMount({
        slave: server,
        share: uploads,
        packName: uploadsShareName(group.name),
        mountPoint: uploadsMountPoint(server, group.name),
        groupWritable: true,
      });
      if (m.changed) repaired.get(server.name)?.push('uploads mount');
    });
    uploadMounts.forEach((s, i) => {
      if (!s.ok) noteFailure((uploadReaders[i] as Server).name, describeFailure(s.error));
    });
    for (const site of sites) await quick.ensureSiteUploads({ share: uploads, domain: site.domain });
  }

  // Behind a load balancer, members whose code changes get it one at a time, out of rotation, in a new release
  // (rollOutCode); if one fails, those done switch back.
  if (group.kind === 'cluster' && group.loadBalancer) {
    const rolled = await rollOutCode({
      group,
      lb: group.loadBalancer,
      servers: healthy(codeReceivers(group)),
      platforms,
      sites,
      progress,
      onSynced: (server, platform, files) => repaired.get(server)?.push(`${platform}: ${files} file(s)`),
    });
    if (rolled.stoppedAt) {
      const at = rolled.stoppedAt.server;
      noteFailure(at, rolled.stoppedAt.error);
      for (const back of rolled.switchedBack.filter((n) => n !== at))
        noteFailure(back, `switched back to its previous release: the rolling update stopped at ${at}`);
      for (const failure of rolled.switchBackFailed) {
        const server = failure.split(':')[0] as string;
        if (server !== at) noteFailure(server, `switch back failed: ${failure}`);
      }
      for (const rest of rolled.notReached) noteFailure(rest, `not updated: the rolling update stopped at ${at}`);
    }
  }

  // Platform code on the code receivers: all at once, then a push of its own for each member that failed there
  // for a reason worth retrying.
  for (const platform of platforms) {
    const receivers = healthy(codeReceivers(group));
    if (receivers.length === 0) break;
    for (const r of receivers) progress.node(r.name, 'running', `sync ${platform.name}`);
    const { results } = await long.syncPlatformToServers({
      servers: receivers,
      platform,
      dryRun: false,
      maxParallel: parallelism(group),
    });
    const outcome = new Map<string, { filesChanged: number } | { error: string }>();
    for (const r of results) {
      if (r.ok) outcome.set(r.server, { filesChanged: r.summary.filesChanged });
      else if (!r.retryable) outcome.set(r.server, { error: r.error });
    }
    const missed = receivers.filter((r) => !outcome.has(r.name));
    const retried = await settleBounded(missed, parallelism(group), (server: Server) =>
      long.syncPlatform({ server, platform, dryRun: false }),
    );
    retried.forEach((s, i) =>
      outcome.set(
        (missed[i] as Server).name,
        s.ok ? { filesChanged: s.value.filesChanged } : { error: describeFailure(s.error) },
      ),
    );
    for (const [server, o] of outcome) {
      if ('error' in o) noteFailure(server, o.error);
      else if (o.filesChanged > 0) repaired.get(server)?.push(`${platform.name}: ${o.filesChanged} file(s)`);
    }
  }

  // Site directories (code receivers) and vhosts (every member): one activity per member for all its sites (one
  // config test and reload), so that the history does not grow with the sites. Histories recorded before
  // (SITE_BATCH_PATCH not set) replay the loop of two activities per site and member.
  const siteMembers = healthy(members);
  const batched = patched(SITE_BATCH_PATCH);
  const siteResults = await settleBounded(siteMembers, parallelism(group), async (server: Server) => {
    const receivesCode = group.codeReceivers.includes(server.name);
    const done = repaired.get(server.name) ?? [];
    if (batched) {
      progress.node(server.name, 'running', `${sites.length} site(s)`);
      const r = await perServer.ensureSitesOnServer({
        server,
        platforms,
        sites,
        dbServers: input.dbServers,
        receivesCode,
        uploads: siteUploads(group, server),
      });
      done.push(...r.repaired);
      progress.node(server.name, 'done', done.length > 0 ? `repaired ${repairSummary(done)}` : 'in line');
      return;
    }
    for (const site of sites) {
      const platform = platforms.find((p) => p.name === site.platform);
      if (!platform) continue;
      progress.node(server.name, 'running', `site ${site.domain}`);
      if (receivesCode) {
        const dbServer = input.dbServers.find((d) => d.name === site.dbServer);
        const d = await quick.ensureSiteDir({ server, site, platform, dbServer, uploads: siteUploads(group, server) });
        if (d.changed) done.push(`site dir ${site.domain}`);
      }
      const v = await quick.installVhost({ server, site, platform });
      if (v.changed) done.push(`vhost ${site.domain}`);
    }
    // The same words as the result (`wp: 3 file(s)`), not a count of them that reads like a count of files.
    progress.node(server.name, 'done', done.length > 0 ? `repaired ${repairSummary(done)}` : 'in line');
  });
  siteResults.forEach((s, i) => {
    if (!s.ok) noteFailure((siteMembers[i] as Server).name, describeFailure(s.error));
  });

  const nodes = members.map((m) => {
    const error = failed.get(m.name);
    return error === undefined
      ? { server: m.name, ok: true, repaired: repaired.get(m.name) ?? [] }
      : { server: m.name, ok: false, repaired: repaired.get(m.name) ?? [], error };
  });
  const ok = nodes.every((n) => n.ok);
  markHealth(
    ok,
    nodes.filter((n) => !n.ok).map((n) => `${n.server}: ${n.error ?? 'not repaired'}`),
  );
  return { group: group.name, ok, nodes };
}

/** What a member's repair changed, as the result lists it: `wp: 3 file(s); vhost a.example.com` (at most 3 named). */
function repairSummary(done: readonly string[]): string {
  const named = done.slice(0, 3).join('; ');
  return done.length > 3 ? `${named} and ${done.length - 3} more` : named;
}
