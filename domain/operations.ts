/**
 * Operation contracts: workflow type names, their inputs, and the workflow ids derived from resources.
 * The API resolves names from the inventory into these inputs, so a workflow's history records exactly
 * which servers it acted on. No secret is ever part of an input.
 */
import type { Platform, Server, Site } from './model';
import type { TransferOptions } from './transfer';

/** Task queue of the default worker. */
export const TASK_QUEUE = 'sitefleet';

/** A resolved web target: one server, a pack, or a cluster. */
export interface WebGroup {
  kind: 'server' | 'pack' | 'cluster';
  name: string;
  /** Every web member. For a pack the master comes first. */
  members: Server[];
  /** Names of the members that receive platform code by rsync: cluster: all; pack: the master; server: itself. */
  codeReceivers: string[];
  /** Pack only: the NFS share the slaves read the master's platforms through. */
  share?: PackShare;
  /** Cluster only: the share every member mounts for the sites' uploads (domain/paths.ts uploadsMountPoint). */
  uploads?: PackShare;
  /** Bounded fan-out. @default 8 */
  maxParallel?: number;
  /** Cluster only: the load balancer, if any (a server with an `lb` service). */
  loadBalancer?: Server;
  /**
   * Cluster with a load balancer only: every platform and site of the cluster as the inventory has them, so that
   * any operation can render the LB's whole view of the cluster (workflows/load-balancer.ts).
   */
  loadBalancerRoutes?: { platforms: Platform[]; sites: Site[] };
}

export interface ClusterLoadBalancerInput {
  /** The cluster with its (new) load balancer, or without one to take the cluster off `previous`. */
  group: WebGroup;
  platforms: Platform[];
  sites: Site[];
  /** The load balancer the cluster had before, whose block is removed when it differs from the new one. */
  previous?: Server;
}

/** A cluster of `members`, every member a code receiver. */
export function clusterGroup(name: string, members: readonly Server[], extra: Partial<WebGroup> = {}): WebGroup {
  return { kind: 'cluster', name, members: [...members], codeReceivers: members.map((m) => m.name), ...extra };
}

export interface PackShare {
  server: Server;
  exportPath: string;
  clients: string;
  clientFlavour: 'kernel' | 'sshfs';
}

export interface VerifyServerInput {
  server: Server;
}
export interface SetupPackShareInput {
  pack: WebGroup;
}
export interface TeardownPackShareInput {
  pack: WebGroup;
  /** Names of the platforms on the pack: while there are any, the teardown is refused unless `force`. */
  platforms: string[];
  /** Take the share down although platforms are on the pack (their slaves stop serving them). */
  force?: boolean;
}
export interface SetupClusterUploadsInput {
  cluster: WebGroup;
}
export interface TeardownClusterUploadsInput {
  cluster: WebGroup;
  /** Domains of the sites on the cluster: while there are any, the teardown is refused unless `force`. */
  sites: string[];
  /** Take the share down although sites are on the cluster (their uploads stop being served). */
  force?: boolean;
}
export interface CreatePlatformInput {
  platform: Platform;
  group: WebGroup;
  /**
   * How the code reaches the code receivers (workflows/relay.ts): the pack's or cluster's stored options, overridden
   * field by field by the deployment's own. Absent: parallel rsync.
   */
  transfer?: TransferOptions;
}
export interface InstallSiteInput {
  site: Site;
  platform: Platform;
  group: WebGroup;
  dbServer?: Server;
}
/** EnableSite and DisableSite: `site` carries the status to set; only the members' vhosts change. */
export interface SetSiteStatusInput {
  site: Site;
  platform: Platform;
  group: WebGroup;
  /** Not used (the database stays as it is); accepted so that starts and recorded histories keep one shape. */
  dbServer?: Server;
}
export interface DeleteSiteInput {
  site: Site;
  platform: Platform;
  group: WebGroup;
  dbServer?: Server;
}
export interface DeletePlatformInput {
  platform: Platform;
  group: WebGroup;
  /** Sites the inventory still lists on the platform; the workflow refuses while any remain. */
  sites: string[];
}
export interface RollbackPlatformInput {
  platform: Platform;
  group: WebGroup;
}
export interface VerifyNodesInput {
  group: WebGroup;
  platforms: Platform[];
  sites: Site[];
  dbServers: Server[];
  /**
   * Where each site's full probe (the page the install workflows check, rendered by the application) runs:
   * `one-node` — on one member per site, taken in turn, while every other member answers the cheap health check
   * (domain/site-probe.ts: the same site selection, settings and database, without booting the application);
   * `every-node` — the full probe on every member (sites × members renders). @default 'one-node'
   */
  fullProbes?: 'one-node' | 'every-node';
}
export interface ResyncInput {
  group: WebGroup;
  platforms: Platform[];
  sites: Site[];
  /** Database servers of the sites, to rewrite a lost settings file. */
  dbServers: Server[];
}

export type BackupSiteInput = InstallSiteInput;

export interface RestoreSiteInput extends InstallSiteInput {
  /** The backup file name under the backups directory of the first code receiver (as BackupSite returned it). */
  backup: string;
}

export interface MigrateSiteInput extends InstallSiteInput {
  /** Where the site moves: the new platform and the group it lives on. */
  to: { platform: Platform; group: WebGroup };
}

export interface ClusterMemberInput {
  /** The cluster as it is now (before the member is added or removed). */
  group: WebGroup;
  member: Server;
  platforms: Platform[];
  sites: Site[];
  /** Database servers of the sites (a new member gets their settings and is granted access). */
  dbServers: Server[];
}

/** Workflow ids: one operation at a time per resource. */
export const workflowIds = {
  server: (name: string) => `server/${name}`,
  pack: (name: string) => `pack/${name}`,
  cluster: (name: string) => `cluster/${name}`,
  platform: (name: string) => `platform/${name}`,
  site: (domain: string) => `site/${domain}`,
  /** Verification is read-only and may run beside changes; one at a time per group. */
  verify: (kind: WebGroup['kind'], name: string) => `verify/${kind}/${name}`,
  resync: (kind: WebGroup['kind'], name: string) => `resync/${kind}/${name}`,
};

/** Workflow type names: part of the public interface (the API and schedules start workflows by these names). */
export const WORKFLOW_TYPES = {
  verifyServer: 'VerifyServer',
  setupPackShare: 'SetupPackShare',
  teardownPackShare: 'TeardownPackShare',
  setupClusterUploads: 'SetupClusterUploads',
  teardownClusterUploads: 'TeardownClusterUploads',
  createPlatform: 'CreatePlatform',
  createPlatformOnPack: 'CreatePlatformOnPack',
  createPlatformOnCluster: 'CreatePlatformOnCluster',
  installSite: 'InstallSite',
  installSiteOnPack: 'InstallSiteOnPack',
  installSiteOnCluster: 'InstallSiteOnCluster',
  verifyClusterNodes: 'VerifyClusterNodes',
  resyncCluster: 'ResyncCluster',
  deleteSite: 'DeleteSite',
  deletePlatform: 'DeletePlatform',
  rollbackPlatform: 'RollbackPlatform',
  enableSite: 'EnableSite',
  disableSite: 'DisableSite',
  backupSite: 'BackupSite',
  restoreSite: 'RestoreSite',
  migrateSite: 'MigrateSite',
  addClusterMember: 'AddClusterMember',
  removeClusterMember: 'RemoveClusterMember',
  configureClusterLoadBalancer: 'ConfigureClusterLoadBalancer',
} as const;
