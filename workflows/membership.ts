/**
 * AddClusterMember and RemoveClusterMember: a new member receives everything before it serves; a leaving member
 * stops serving before anything is removed from it.
 */
import { badInput, FailureType, permanentFailure } from '../common/failures';
import { patched } from '@temporalio/workflow';
import type { ClusterMemberInput } from '../domain/operations';
import { siteProbeSpec } from '../domain/site-probe';
import { drainWait, long, perServer, probe, quick, undo, undoPerServer } from './activity-stubs';
import { failedAfterCompensation } from './failures';
import { expectGroup, MEMBER_BATCH_PATCH, MEMBER_REVOKE_PATCH, siteUploads, SITE_BATCH_PATCH } from './group';
import { uploadsMountPoint, uploadsShareName } from '../domain/paths';
import { followOnLoadBalancer } from './load-balancer';
import { Progress } from './progress';
import { Saga } from './saga';
import { tagRun } from './search';

export interface MembershipResult {
  cluster: string;
  member: string;
  platforms: string[];
  sites: string[];
}

/**
 * AddClusterMember: web config, every platform, every site directory (with settings) and vhost on the new member;
 * the database servers grant it access; every site must answer through it. If any step fails, everything put on
 * the new member is removed again and the grants are as before.
 */
export async function AddClusterMember(input: ClusterMemberInput): Promise<MembershipResult> {
  const { group, member, platforms, sites, dbServers } = input;
  expectGroup(group, 'cluster');
  if (group.members.some((m) => m.name === member.name))
    throw badInput(`member: ${member.name} is already a member of ${group.name}`);
  if (!member.http) throw badInput(`member: server ${member.name} has no http service`);
  tagRun({ group, servers: [...group.members.map((m) => m.name), member.name] });
  const progress = new Progress('AddClusterMember', [member.name]);
  const saga = new Saga();
  const everyone = [...group.members, member].map((m) => m.address ?? m.host);
  let step = 'web server config';
  try {
    progress.node(member.name, 'running', step);
    await quick.ensureWebConfig({ server: member });
    for (const platform of platforms) {
      step = `sync platform ${platform.name}`;
      progress.node(member.name, 'running', step);
      if (!(await quick.platformExists({ server: member, platform }))) {
        saga.add(`remove platform ${platform.name}`, () => undo.removePlatform({ server: member, platform }));
      }
      await long.syncPlatform({ server: member, platform, dryRun: false });
    }
    const uploads = group.uploads;
    if (uploads && member.name !== uploads.server.name) {
      // The new member mounts the cluster's uploads share before any site directory links into it.
      step = 'mount the uploads share';
      progress.node(member.name, 'running', step);
      const mount = {
        slave: member,
        share: uploads,
        packName: uploadsShareName(group.name),
        mountPoint: uploadsMountPoint(member, group.name),
        groupWritable: true,
      };
      const state = await quick.inspectShareMount(mount);
      if (!state.mounted || !state.fstab) saga.add('unmount the uploads share', () => undo.removeShareMount(mount));
      await quick.ensureShareMount(mount);
      const read = await probe.checkShareRead(mount);
      if (!read.ok) throw permanentFailure(FailureType.ShareNotVisible, `${member.name}: ${read.detail}`);
    }
    if (patched(MEMBER_BATCH_PATCH)) {
      await addSitesBatched(input, saga, (next) => {
        step = next;
        progress.node(member.name, 'running', step);
      });
    } else {
      for (const site of sites) {
        const platform = platforms.find((p) => p.name === site.platform);
        if (!platform) throw badInput(`sites: ${site.domain} is on platform ${site.platform}, which is not listed`);
        const dbServer = dbServers.find((d) => d.name === site.dbServer);
        step = `install ${site.domain}`;
        progress.node(member.name, 'running', step);
        if (dbServer) await quick.ensureDatabase({ dbServer, site, clients: everyone });
        const before = await quick.inspectSite({ server: member, site, platform });
        if (!before.siteDirExists)
          saga.add(`remove ${site.domain}`, () =>
            undo.removeSiteDir({ server: member, site, platform, backup: false }),
          );
        if (uploads) await quick.ensureSiteUploads({ share: uploads, domain: site.domain });
        await quick.ensureSiteDir({ server: member, site, platform, dbServer, uploads: siteUploads(group, member) });
        saga.add(`restore vhost ${site.domain}`, () =>
          undo.restoreVhost({ server: member, site, previous: before.vhost }),
        );
        await quick.installVhost({ server: member, site, platform });
      }
    }
    step = 'probe every site through the new member';
    progress.node(member.name, 'running', step);
    if (sites.length > 0 && patched(SITE_BATCH_PATCH)) {
      // One activity for every site (the history does not grow with the sites).
      const r = await perServer.probeSitesOnServer({ server: member, platforms, sites, stopAtFirstFailure: true });
      const failure = r.failures[0];
      if (failure) {
        throw permanentFailure(FailureType.ProbeFailed, `${failure.domain} through ${member.name}: ${failure.detail}`);
      }
    }
    for (const site of patched(SITE_BATCH_PATCH) ? [] : sites) {
      const platform = platforms.find((p) => p.name === site.platform);
      if (!platform) continue;
      const res = await probe.probeSite({ server: member, site, platform, ...siteProbeSpec(site, platform) });
      if (!res.ok) {
        throw permanentFailure(FailureType.ProbeFailed, `${site.domain} through ${member.name}: ${res.detail}`);
      }
    }
    if (group.loadBalancer) {
      step = `put ${member.name} on the load balancer`;
      progress.node(member.name, 'running', step);
      await followOnLoadBalancer(group, saga, { members: [...group.members, member] });
    }
  } catch (err) {
    progress.node(member.name, 'compensating', step);
    throw failedAfterCompensation(step, err, await saga.compensate());
  }
  progress.node(member.name, 'done', 'serving every site');
  return {
    cluster: group.name,
    member: member.name,
    platforms: platforms.map((p) => p.name),
    sites: sites.map((s) => s.domain),
  };
}

/**
 * RemoveClusterMember: the member stops serving first (every vhost removed, config tested, reloaded), then its site
 * directories go, the database servers drop its accounts, and its platforms are removed. The other members are
 * not touched.
 */
export async function RemoveClusterMember(input: ClusterMemberInput): Promise<MembershipResult> {
  const { group, member, platforms, sites } = input;
  expectGroup(group, 'cluster');
  if (!group.members.some((m) => m.name === member.name))
    throw badInput(`member: ${member.name} is not a member of ${group.name}`);
  if (group.members.length === 1) throw badInput(`member: ${member.name} is the last member of ${group.name}`);
  tagRun({ group });
  const progress = new Progress('RemoveClusterMember', [member.name]);
  const lb = group.loadBalancer;
  if (lb) {
    // The load balancer stops sending it requests and lets the ones in flight finish before anything is removed.
    progress.node(member.name, 'running', 'drain at the load balancer');
    await quick.setLoadBalancerMember({ lb, cluster: group.name, member: member.name, state: 'drain' });
    await drainWait.waitLoadBalancerMemberIdle({ lb, cluster: group.name, member: member.name, timeoutSeconds: 60 });
    const saga = new Saga();
    try {
      await followOnLoadBalancer(group, saga, { members: group.members.filter((m) => m.name !== member.name) });
    } catch (err) {
      throw failedAfterCompensation('take the member off the load balancer', err, await saga.compensate());
    }
  }
  progress.node(member.name, 'running', 'stop serving');
  if (patched(MEMBER_BATCH_PATCH)) {
    // One activity for every site: all vhosts go (one config test, one reload), then the site directories.
    if (sites.length > 0) await perServer.removeSitesFromServer({ server: member, platforms, sites });
    progress.node(member.name, 'running', 'remove platforms');
  } else {
    for (const site of sites) await quick.restoreVhost({ server: member, site, previous: null });
    progress.node(member.name, 'running', 'remove sites and platforms');
    for (const site of sites) {
      const platform = platforms.find((p) => p.name === site.platform);
      if (platform) await quick.removeSiteDir({ server: member, site, platform, backup: false });
    }
  }
  if (patched(MEMBER_REVOKE_PATCH)) {
    progress.node(member.name, 'running', 'revoke database access');
    await revokeMemberDatabaseAccess(input);
  }
  for (const platform of platforms) await quick.removePlatform({ server: member, platform });
  if (group.uploads && member.name !== group.uploads.server.name) {
    // Only the mount goes: the uploads stay on the files server for the other members.
    await quick.removeShareMount({
      slave: member,
      share: group.uploads,
      packName: uploadsShareName(group.name),
      mountPoint: uploadsMountPoint(member, group.name),
    });
  }
  progress.node(member.name, 'done', 'removed');
  return {
    cluster: group.name,
    member: member.name,
    platforms: platforms.map((p) => p.name),
    sites: sites.map((s) => s.domain),
  };
}

/**
 * Drops the leaving member's account of every site's database user, one read and at most one batch per database
 * server; every other account stays as it is. An address that a remaining member shares keeps its accounts.
 */
async function revokeMemberDatabaseAccess(input: ClusterMemberInput): Promise<void> {
  const { group, member, sites, dbServers } = input;
  const leaving = member.address ?? member.host;
  if (group.members.some((m) => m.name !== member.name && (m.address ?? m.host) === leaving)) return;
  for (const dbServer of dbServers) {
    const onIt = sites.filter((s) => s.dbServer === dbServer.name).map((s) => ({ domain: s.domain }));
    if (onIt.length === 0) continue;
    const { accounts } = await perServer.inspectDatabasesOnServer({ dbServer, sites: onIt });
    const revoked = accounts
      .filter((a) => a.hosts.includes(leaving))
      .map((a) => ({ domain: a.domain, hosts: a.hosts.filter((h) => h !== leaving) }));
    if (revoked.length > 0) await perServer.setDatabaseAccountsOnServer({ dbServer, accounts: revoked });
  }
}

/**
 * Every site onto a new member in a fixed number of activities whatever the number of sites: per database server
 * a snapshot of the accounts, its undo, then the grants; the uploads directories on the files server; on the member
 * a snapshot of the site directories and vhosts, its undo, then every directory and vhost (one config test, one
 * reload). Each snapshot is taken before its batch, so a batch that fails half-way is undone exactly too.
 */
async function addSitesBatched(input: ClusterMemberInput, saga: Saga, at: (step: string) => void): Promise<void> {
  const { group, member, platforms, sites, dbServers } = input;
  for (const site of sites) {
    if (!platforms.some((p) => p.name === site.platform))
      throw badInput(`sites: ${site.domain} is on platform ${site.platform}, which is not listed`);
  }
  if (sites.length === 0) return;
  const everyone = [...group.members, member].map((m) => m.address ?? m.host);
  for (const dbServer of dbServers) {
    const onIt = sites.filter((s) => s.dbServer === dbServer.name).map((s) => ({ domain: s.domain }));
    if (onIt.length === 0) continue;
    at(`grant ${onIt.length} site database(s) on ${dbServer.name}`);
    const before = await perServer.inspectDatabasesOnServer({ dbServer, sites: onIt });
    saga.add(
      `restore the database accounts on ${dbServer.name}`,
      () => undoPerServer.setDatabaseAccountsOnServer({ dbServer, accounts: before.accounts }),
      { on: dbServer.name },
    );
    await perServer.ensureDatabasesOnServer({ dbServer, sites: onIt, clients: everyone });
  }
  if (group.uploads) {
    at(`uploads of ${sites.length} site(s)`);
    await perServer.ensureUploadsOnServer({ share: group.uploads, domains: sites.map((s) => s.domain) });
  }
  at(`install ${sites.length} site(s)`);
  const before = await perServer.inspectSitesOnServer({ server: member, platforms, sites });
  const keep = { siteDirs: before.siteDirs, vhosts: before.vhosts };
  saga.add(
    `remove the sites from ${member.name}`,
    () => undoPerServer.removeSitesFromServer({ server: member, platforms, sites, keep }),
    { on: member.name },
  );
  await perServer.ensureSitesOnServer({
    server: member,
    platforms,
    sites,
    dbServers,
    receivesCode: true,
    uploads: siteUploads(group, member),
  });
}
