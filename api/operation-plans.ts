/**
 * What each operation starts: the workflow type (by target kind), its id (one operation at a time per resource),
 * its input resolved from the inventory, the search attributes and summary an operator sees in the Web UI, and
 * the inventory change to make when it completes. Building a plan reads the inventory and changes nothing.
 */
import type * as workflows from '../workflows';
import type { Server, Target } from '../domain/model';
import { effectiveTransferOptions, type TransferOptions } from '../domain/transfer';
import {
  WORKFLOW_TYPES,
  workflowIds,
  type ClusterLoadBalancerInput,
  type ClusterMemberInput,
  type CreatePlatformInput,
  type MigrateSiteInput,
  type RestoreSiteInput,
  type DeletePlatformInput,
  type RollbackPlatformInput,
  type DeleteSiteInput,
  type InstallSiteInput,
  type ResyncInput,
  type SetSiteStatusInput,
  type SetupPackShareInput,
  type SetupClusterUploadsInput,
  type TeardownClusterUploadsInput,
  type TeardownPackShareInput,
  type VerifyNodesInput,
  type VerifyServerInput,
  type WebGroup,
} from '../domain/operations';
import {
  groupServerNames,
  resolveGroupState,
  resolveSite,
  resolveWebGroup,
  storedTransferOptions,
  type SiteContext,
} from '../inventory/resolve';
import { ConflictError, NotFoundError, type InventoryStore, type OperationEffect } from '../inventory/store';

/** Every workflow type workers/ registers, and the input each takes, as workflows/index.ts exports them. */
type Workflows = typeof workflows;
export type WorkflowType = keyof Workflows;
export type WorkflowInput<W extends WorkflowType> = Parameters<Workflows[W]>[0];

// Every name in WORKFLOW_TYPES must be a workflow that workflows/index.ts exports (a compile-time check).
WORKFLOW_TYPES satisfies Record<string, WorkflowType>;

/**
 * What the API starts: for each workflow type, its input type as the workflow declares it, so that a plan with
 * the wrong input for its type does not compile.
 */
export type OperationPlan = { [W in WorkflowType]: PlanOf<W> }[WorkflowType];

interface PlanOf<W extends WorkflowType> {
  workflowType: W;
  workflowId: string;
  /** The resource the operation belongs to, such as `site/example.com`. */
  resource: string;
  input: WorkflowInput<W>;
  /** One line for the Web UI. */
  summary: string;
  tags: { site?: string; platform?: string; cluster?: string; servers: string[] };
  effect?: OperationEffect;
}

const byKind = <T>(kind: WebGroup['kind'], choices: Record<WebGroup['kind'], T>): T => choices[kind];

function describeGroup(group: WebGroup): string {
  const names = group.members.map((m) => m.name);
  return group.kind === 'server' ? `server ${group.name}` : `${group.kind} ${group.name} (${names.join(', ')})`;
}

function siteTags(ctx: SiteContext): OperationPlan['tags'] {
  const servers = groupServerNames(ctx.group);
  if (ctx.dbServer) servers.push(ctx.dbServer.name);
  return {
    site: ctx.site.domain,
    platform: ctx.platform.name,
    ...(ctx.group.kind !== 'server' ? { cluster: ctx.group.name } : {}),
    servers: [...new Set(servers)],
  };
}

function siteInput(ctx: SiteContext): InstallSiteInput {
  return {
    site: ctx.site,
    platform: ctx.platform,
    group: ctx.group,
    ...(ctx.dbServer ? { dbServer: ctx.dbServer } : {}),
  };
}

export async function planVerifyServer(store: InventoryStore, name: string): Promise<OperationPlan> {
  const server = await store.get('server', name);
  if (!server) throw new NotFoundError('server', name);
  const input: VerifyServerInput = { server };
  return {
    workflowType: WORKFLOW_TYPES.verifyServer,
    workflowId: workflowIds.server(name),
    resource: `server/${name}`,
    input,
    summary: `Verify server ${name} (${server.host})`,
    tags: { servers: [name] },
  };
}

export async function planSetupPackShare(store: InventoryStore, name: string): Promise<OperationPlan> {
  const group = await resolveWebGroup(store, { kind: 'pack', name });
  const input: SetupPackShareInput = { pack: group };
  return {
    workflowType: WORKFLOW_TYPES.setupPackShare,
    workflowId: workflowIds.pack(name),
    resource: `pack/${name}`,
    input,
    summary: `Set up the NFS share of ${describeGroup(group)} from ${group.share?.server.name ?? '?'}`,
    tags: { cluster: name, servers: groupServerNames(group) },
  };
}

/** Takes a pack's share down (TeardownPackShare), with the names of the platforms on the pack for its refusal. */
export async function planTeardownPackShare(
  store: InventoryStore,
  name: string,
  force: boolean,
): Promise<OperationPlan> {
  const group = await resolveWebGroup(store, { kind: 'pack', name });
  const platforms = (await store.platformsOn({ kind: 'pack', name })).map((p) => p.name);
  const input: TeardownPackShareInput = { pack: group, platforms, ...(force ? { force: true } : {}) };
  return {
    workflowType: WORKFLOW_TYPES.teardownPackShare,
    workflowId: workflowIds.pack(name),
    resource: `pack/${name}`,
    input,
    summary: `Take down the share of ${describeGroup(group)}${force ? ' (forced)' : ''}`,
    tags: { cluster: name, servers: groupServerNames(group) },
  };
}

/** Sets up a cluster's uploads share (SetupClusterUploads): the export on its files server, a mount on every member. */
export async function planSetupClusterUploads(store: InventoryStore, name: string): Promise<OperationPlan> {
  const group = await resolveWebGroup(store, { kind: 'cluster', name });
  const input: SetupClusterUploadsInput = { cluster: group };
  return {
    workflowType: WORKFLOW_TYPES.setupClusterUploads,
    workflowId: workflowIds.cluster(name),
    resource: `cluster/${name}`,
    input,
    summary: `Set up the uploads share of ${describeGroup(group)} from ${group.uploads?.server.name ?? '?'}`,
    tags: { cluster: name, servers: groupServerNames(group) },
  };
}

/** Takes a cluster's uploads share down (TeardownClusterUploads); the uploads stay on the files server. */
export async function planTeardownClusterUploads(
  store: InventoryStore,
  name: string,
  force: boolean,
): Promise<OperationPlan> {
  const group = await resolveWebGroup(store, { kind: 'cluster', name });
  const platforms = await store.platformsOn({ kind: 'cluster', name });
  const sites = (await Promise.all(platforms.map((p) => store.sitesOn(p.name)))).flat().map((s) => s.domain);
  const input: TeardownClusterUploadsInput = { cluster: group, sites, ...(force ? { force: true } : {}) };
  return {
    workflowType: WORKFLOW_TYPES.teardownClusterUploads,
    workflowId: workflowIds.cluster(name),
    resource: `cluster/${name}`,
    input,
    summary: `Take down the uploads share of ${describeGroup(group)}${force ? ' (forced)' : ''}`,
    tags: { cluster: name, servers: groupServerNames(group) },
  };
}

/**
 * Deploys a platform on its target. The code goes by parallel rsync or relay as the target pack's or cluster's
 * stored `transfer` options say, each field overridden by `transfer` given for this operation (a server stores none).
 */
export async function planDeployPlatform(
  store: InventoryStore,
  name: string,
  transfer?: TransferOptions,
): Promise<OperationPlan> {
  const platform = await store.get('platform', name);
  if (!platform) throw new NotFoundError('platform', name);
  const group = await resolveWebGroup(store, platform.target);
  const options = effectiveTransferOptions(await storedTransferOptions(store, platform.target), transfer);
  const input: CreatePlatformInput = { platform, group, ...(options ? { transfer: options } : {}) };
  return {
    workflowType: byKind(group.kind, {
      server: WORKFLOW_TYPES.createPlatform,
      pack: WORKFLOW_TYPES.createPlatformOnPack,
      cluster: WORKFLOW_TYPES.createPlatformOnCluster,
    }),
    workflowId: workflowIds.platform(name),
    resource: `platform/${name}`,
    input,
    summary: `Deploy platform ${name} (${platform.profile}, ${platform.source.type}) on ${describeGroup(group)}`,
    tags: {
      platform: name,
      ...(group.kind !== 'server' ? { cluster: group.name } : {}),
      servers: groupServerNames(group),
    },
  };
}

export async function planDeletePlatform(store: InventoryStore, name: string): Promise<OperationPlan> {
  const platform = await store.get('platform', name);
  if (!platform) throw new NotFoundError('platform', name);
  const sites = (await store.sitesOn(name)).map((s) => s.domain);
  if (sites.length > 0) {
    throw new ConflictError(
      `platform "${name}" still has ${sites.length} site(s): ${sites.join(', ')}; delete or migrate them first`,
    );
  }
  const group = await resolveWebGroup(store, platform.target);
  const input: DeletePlatformInput = { platform, group, sites };
  return {
    workflowType: WORKFLOW_TYPES.deletePlatform,
    workflowId: workflowIds.platform(name),
    resource: `platform/${name}`,
    input,
    summary: `Delete platform ${name} from ${describeGroup(group)}`,
    tags: {
      platform: name,
      ...(group.kind !== 'server' ? { cluster: group.name } : {}),
      servers: groupServerNames(group),
    },
    effect: { type: 'forget', kind: 'platform', key: name },
  };
}

/**
 * Puts every member of the platform's cluster back on its previous release (RollbackPlatform). Release directories
 * are made by rolling updates behind a cluster's load balancer; the workflow refuses members without a previous one.
 */
export async function planRollbackPlatform(store: InventoryStore, name: string): Promise<OperationPlan> {
  const platform = await store.get('platform', name);
  if (!platform) throw new NotFoundError('platform', name);
  if (platform.target.kind !== 'cluster') {
    throw new ConflictError(
      `platform "${name}" is on ${platform.target.kind} ${platform.target.name}: only a cluster's platforms have ` +
        'releases to roll back to (made by rolling updates behind its load balancer)',
    );
  }
  const group = await resolveWebGroup(store, platform.target);
  const input: RollbackPlatformInput = { platform, group };
  return {
    workflowType: WORKFLOW_TYPES.rollbackPlatform,
    workflowId: workflowIds.platform(name),
    resource: `platform/${name}`,
    input,
    summary: `Roll platform ${name} back to its previous release on ${describeGroup(group)}`,
    tags: { platform: name, cluster: group.name, servers: groupServerNames(group) },
  };
}

export async function planInstallSite(store: InventoryStore, domain: string): Promise<OperationPlan> {
  const ctx = await resolveSite(store, domain);
  return {
    workflowType: byKind(ctx.group.kind, {
      server: WORKFLOW_TYPES.installSite,
      pack: WORKFLOW_TYPES.installSiteOnPack,
      cluster: WORKFLOW_TYPES.installSiteOnCluster,
    }),
    workflowId: workflowIds.site(domain),
    resource: `site/${domain}`,
    input: siteInput(ctx),
    summary:
      `Install site ${domain} (platform ${ctx.platform.name}) on ${describeGroup(ctx.group)}` +
      (ctx.dbServer ? `, database on ${ctx.dbServer.name}` : ''),
    tags: siteTags(ctx),
  };
}

export async function planDeleteSite(store: InventoryStore, domain: string): Promise<OperationPlan> {
  const ctx = await resolveSite(store, domain);
  const input: DeleteSiteInput = siteInput(ctx);
  return {
    workflowType: WORKFLOW_TYPES.deleteSite,
    workflowId: workflowIds.site(domain),
    resource: `site/${domain}`,
    input,
    summary: `Delete site ${domain} from ${describeGroup(ctx.group)}` + (ctx.dbServer ? ' with its database' : ''),
    tags: siteTags(ctx),
    effect: { type: 'forget', kind: 'site', key: domain },
  };
}

export async function planSiteStatus(
  store: InventoryStore,
  domain: string,
  status: 'enabled' | 'disabled',
): Promise<OperationPlan> {
  const ctx = await resolveSite(store, domain);
  const input: SetSiteStatusInput = siteInput({ ...ctx, site: { ...ctx.site, status } });
  return {
    workflowType: status === 'enabled' ? WORKFLOW_TYPES.enableSite : WORKFLOW_TYPES.disableSite,
    workflowId: workflowIds.site(domain),
    resource: `site/${domain}`,
    input,
    summary: `${status === 'enabled' ? 'Enable' : 'Disable'} site ${domain} on ${describeGroup(ctx.group)}`,
    tags: siteTags(ctx),
    effect: { type: 'patch-site', domain, patch: { status } },
  };
}

export async function planBackupSite(store: InventoryStore, domain: string): Promise<OperationPlan> {
  const ctx = await resolveSite(store, domain);
  return {
    workflowType: WORKFLOW_TYPES.backupSite,
    workflowId: workflowIds.site(domain),
    resource: `site/${domain}`,
    input: siteInput(ctx),
    summary: `Back up site ${domain} from ${describeGroup(ctx.group)}`,
    tags: siteTags(ctx),
  };
}

export async function planRestoreSite(store: InventoryStore, domain: string, backup: string): Promise<OperationPlan> {
  const ctx = await resolveSite(store, domain);
  const input: RestoreSiteInput = { ...siteInput(ctx), backup };
  return {
    workflowType: WORKFLOW_TYPES.restoreSite,
    workflowId: workflowIds.site(domain),
    resource: `site/${domain}`,
    input,
    summary: `Restore site ${domain} from backup ${backup} on ${describeGroup(ctx.group)}`,
    tags: siteTags(ctx),
  };
}

export async function planMigrateSite(
  store: InventoryStore,
  domain: string,
  toPlatform: string,
): Promise<OperationPlan> {
  const ctx = await resolveSite(store, domain);
  if (ctx.platform.name === toPlatform) {
    throw new ConflictError(`site "${domain}" is already on platform "${toPlatform}"`);
  }
  const platform = await store.get('platform', toPlatform);
  if (!platform) throw new NotFoundError('platform', toPlatform);
  const group = await resolveWebGroup(store, platform.target);
  const input: MigrateSiteInput = { ...siteInput(ctx), to: { platform, group } };
  const tags = siteTags(ctx);
  tags.servers = [...new Set([...tags.servers, ...groupServerNames(group)])];
  return {
    workflowType: WORKFLOW_TYPES.migrateSite,
    workflowId: workflowIds.site(domain),
    resource: `site/${domain}`,
    input,
    summary: `Migrate site ${domain} from platform ${ctx.platform.name} to ${toPlatform} on ${describeGroup(group)}`,
    tags,
    effect: { type: 'patch-site', domain, patch: { platform: toPlatform } },
  };
}

export async function planVerifyGroup(store: InventoryStore, target: Target): Promise<OperationPlan> {
  const state = await resolveGroupState(store, target);
  const input: VerifyNodesInput = state;
  return {
    workflowType: WORKFLOW_TYPES.verifyClusterNodes,
    workflowId: workflowIds.verify(target.kind, target.name),
    resource: `${target.kind}/${target.name}`,
    input,
    summary:
      `Verify every node of ${describeGroup(state.group)}: ` +
      `${state.platforms.length} platform(s), ${state.sites.length} site(s)`,
    tags: { cluster: target.name, servers: groupServerNames(state.group) },
  };
}

export async function planResyncGroup(store: InventoryStore, target: Target): Promise<OperationPlan> {
  const { group, platforms, sites, dbServers } = await resolveGroupState(store, target);
  const input: ResyncInput = { group, platforms, sites, dbServers };
  return {
    workflowType: WORKFLOW_TYPES.resyncCluster,
    workflowId: workflowIds.resync(target.kind, target.name),
    resource: `${target.kind}/${target.name}`,
    input,
    summary: `Repair drift on every node of ${describeGroup(group)}: ${platforms.length} platform(s), ${sites.length} site(s)`,
    tags: { cluster: target.name, servers: groupServerNames(group) },
  };
}

export async function planClusterMember(
  store: InventoryStore,
  cluster: string,
  server: string,
  change: 'add' | 'remove',
): Promise<OperationPlan> {
  const state = await resolveGroupState(store, { kind: 'cluster', name: cluster });
  const member = await store.get('server', server);
  if (!member) throw new NotFoundError('server', server);
  const isMember = state.group.members.some((m) => m.name === server);
  if (change === 'add' && isMember) throw new ConflictError(`server "${server}" is already a member of "${cluster}"`);
  if (change === 'remove' && !isMember) throw new ConflictError(`server "${server}" is not a member of "${cluster}"`);
  if (change === 'remove' && state.group.members.length === 1) {
    throw new ConflictError(`server "${server}" is the last member of "${cluster}"; a cluster needs one member`);
  }
  if (change === 'add' && !member.http) {
    throw new ConflictError(`server "${server}" has no http service, which a cluster member needs`);
  }
  const input: ClusterMemberInput = {
    group: state.group,
    member,
    platforms: state.platforms,
    sites: state.sites,
    dbServers: state.dbServers,
  };
  return {
    workflowType: change === 'add' ? WORKFLOW_TYPES.addClusterMember : WORKFLOW_TYPES.removeClusterMember,
    workflowId: workflowIds.cluster(cluster),
    resource: `cluster/${cluster}`,
    input,
    summary: `${change === 'add' ? 'Add' : 'Remove'} member ${server} ${change === 'add' ? 'to' : 'from'} ${describeGroup(state.group)}`,
    tags: { cluster, servers: [...new Set([...groupServerNames(state.group), server])] },
    effect: { type: change === 'add' ? 'add-cluster-member' : 'remove-cluster-member', cluster, server },
  };
}

/**
 * `cluster set-lb`: the cluster's block goes onto the new load balancer (and off the previous one); the inventory
 * records the new load balancer when the workflow has completed.
 */
export async function planClusterLoadBalancer(
  store: InventoryStore,
  cluster: string,
  server: string | null,
): Promise<OperationPlan> {
  const state = await resolveGroupState(store, { kind: 'cluster', name: cluster });
  const previous = state.group.loadBalancer;
  let lb: Server | undefined;
  if (server !== null) {
    lb = await store.get('server', server);
    if (!lb) throw new NotFoundError('server', server);
    if (!lb.lb) throw new ConflictError(`server "${server}" has no lb service, which a load balancer needs`);
    if (state.group.members.some((m) => m.name === server)) {
      throw new ConflictError(`server "${server}" is a member of "${cluster}" and cannot also be its load balancer`);
    }
  }
  const { loadBalancer: _old, loadBalancerRoutes: _routes, ...rest } = state.group;
  const group: WebGroup = lb ? { ...rest, loadBalancer: lb } : rest;
  const input: ClusterLoadBalancerInput = {
    group,
    platforms: state.platforms,
    sites: state.sites,
    ...(previous ? { previous } : {}),
  };
  return {
    workflowType: WORKFLOW_TYPES.configureClusterLoadBalancer,
    workflowId: workflowIds.cluster(cluster),
    resource: `cluster/${cluster}`,
    input,
    summary: lb
      ? `Put ${describeGroup(state.group)} behind load balancer ${lb.name}`
      : `Take ${describeGroup(state.group)} off its load balancer`,
    tags: {
      cluster,
      servers: [...new Set([...groupServerNames(group), ...(previous ? [previous.name] : [])])],
    },
    effect: { type: 'set-cluster-lb', cluster, server },
  };
}
