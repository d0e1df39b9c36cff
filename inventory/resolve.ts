/**
 * Turns names in the inventory into the resolved objects workflow inputs carry, so that a workflow's history
 * records exactly which servers it acted on.
 */
import type { Platform, Server, Site, Target } from '../domain/model';
import type { WebGroup } from '../domain/operations';
import type { TransferOptions } from '../domain/transfer';
import { MissingReferenceError, NotFoundError, type InventoryStore, type MissingReference } from './store';

async function servers(store: InventoryStore, refs: { field: string; name: string }[]): Promise<Server[]> {
  const found: Server[] = [];
  const missing: MissingReference[] = [];
  for (const ref of refs) {
    const server = await store.get('server', ref.name);
    if (server) found.push(server);
    else missing.push({ field: ref.field, kind: 'server', name: ref.name });
  }
  if (missing.length > 0) throw new MissingReferenceError(missing);
  return found;
}

/**
 * Resolves a platform target into the web group a workflow acts on.
 * - server: itself, receiving code;
 * - pack: members [master, ...slaves], code to the master only, the NFS share with its server resolved;
 * - cluster: every member receives code, the load balancer resolved when there is one.
 * @throws NotFoundError when the target does not exist, MissingReferenceError when it names a missing server
 */
export async function resolveWebGroup(store: InventoryStore, target: Target): Promise<WebGroup> {
  switch (target.kind) {
    case 'server': {
      const server = await store.get('server', target.name);
      if (!server) throw new NotFoundError('server', target.name);
      return { kind: 'server', name: server.name, members: [server], codeReceivers: [server.name] };
    }
    case 'pack': {
      const pack = await store.get('pack', target.name);
      if (!pack) throw new NotFoundError('pack', target.name);
      const members = await servers(store, [
        { field: 'master', name: pack.master },
        ...pack.slaves.map((name, i) => ({ field: `slaves.${i}`, name })),
      ]);
      const [shareServer] = await servers(store, [{ field: 'share.server', name: pack.share.server }]);
      return {
        kind: 'pack',
        name: pack.name,
        members,
        codeReceivers: [pack.master],
        share: {
          server: shareServer!,
          exportPath: pack.share.exportPath,
          clients: pack.share.clients,
          clientFlavour: pack.share.clientFlavour,
        },
      };
    }
    case 'cluster': {
      const cluster = await store.get('cluster', target.name);
      if (!cluster) throw new NotFoundError('cluster', target.name);
      const members = await servers(
        store,
        cluster.members.map((name, i) => ({ field: `members.${i}`, name })),
      );
      const group: WebGroup = {
        kind: 'cluster',
        name: cluster.name,
        members,
        codeReceivers: members.map((m) => m.name),
      };
      if (cluster.uploads) {
        const [filesServer] = await servers(store, [{ field: 'uploads.server', name: cluster.uploads.server }]);
        group.uploads = {
          server: filesServer!,
          exportPath: cluster.uploads.exportPath,
          clients: cluster.uploads.clients,
          clientFlavour: cluster.uploads.clientFlavour,
        };
      }
      if (cluster.loadBalancer) {
        [group.loadBalancer] = await servers(store, [{ field: 'loadBalancer', name: cluster.loadBalancer }]);
        const platforms = await store.platformsOn(target);
        const sites = (await Promise.all(platforms.map((p) => store.sitesOn(p.name)))).flat();
        group.loadBalancerRoutes = { platforms, sites };
      }
      return group;
    }
  }
}

/** The transfer options a pack or cluster stores for its deployments; a single server stores none. */
export async function storedTransferOptions(
  store: InventoryStore,
  target: Target,
): Promise<TransferOptions | undefined> {
  if (target.kind === 'server') return undefined;
  return (await store.get(target.kind, target.name))?.transfer;
}

/** A site with everything an operation on it needs. */
export interface SiteContext {
  site: Site;
  platform: Platform;
  group: WebGroup;
  dbServer?: Server;
}

/** @throws NotFoundError for the site, MissingReferenceError for what it names */
export async function resolveSite(store: InventoryStore, domain: string): Promise<SiteContext> {
  const site = await store.get('site', domain);
  if (!site) throw new NotFoundError('site', domain);
  const platform = await store.get('platform', site.platform);
  if (!platform) throw new MissingReferenceError([{ field: 'platform', kind: 'platform', name: site.platform }]);
  const group = await resolveWebGroup(store, platform.target);
  const context: SiteContext = { site, platform, group };
  if (site.dbServer) [context.dbServer] = await servers(store, [{ field: 'dbServer', name: site.dbServer }]);
  return context;
}

/** A web group with the platforms deployed on it, their sites, and the database servers those sites use. */
export interface GroupState {
  group: WebGroup;
  platforms: Platform[];
  sites: Site[];
  dbServers: Server[];
}

export async function resolveGroupState(store: InventoryStore, target: Target): Promise<GroupState> {
  const group = await resolveWebGroup(store, target);
  const platforms = await store.platformsOn(target);
  const sites = (await Promise.all(platforms.map((p) => store.sitesOn(p.name)))).flat();
  const dbNames = [...new Set(sites.flatMap((s) => (s.dbServer ? [s.dbServer] : [])))].sort();
  const dbServers = await servers(
    store,
    dbNames.map((name) => ({ field: 'dbServer', name })),
  );
  return { group, platforms, sites, dbServers };
}

/** Every server a group touches: members, the share server, the load balancer. */
export function groupServerNames(group: WebGroup): string[] {
  const names = group.members.map((m) => m.name);
  if (group.share) names.push(group.share.server.name);
  if (group.uploads) names.push(group.uploads.server.name);
  if (group.loadBalancer) names.push(group.loadBalancer.name);
  return [...new Set(names)];
}
