/**
 * Reading a resolved web group (server, pack or cluster) inside workflow code.
 */
import { badInput } from '../common/failures';
import type { Server } from '../domain/model';
import type { WebGroup } from '../domain/operations';
import { uploadsRootOn } from '../domain/paths';

export const DEFAULT_MAX_PARALLEL = 8;

/**
 * Patch id (workflow `patched()`) of the per-server batch activities (activities/site-batch.ts) that replaced one
 * or two activities per site in ResyncCluster, the rolling update and AddClusterMember's probes: histories
 * recorded before replay the per-site loops.
 */
export const SITE_BATCH_PATCH = 'sitefleet-site-batch';

/**
 * Patch id of AddClusterMember's and RemoveClusterMember's per-server batches (grants per database server, site
 * directories and vhosts per member, each with one snapshot and one undo): histories recorded before replay the
 * loops of four or five activities per site.
 */
export const MEMBER_BATCH_PATCH = 'sitefleet-member-batch';

/**
 * Patch id of RemoveClusterMember's revocation: the leaving member's database accounts are dropped on every
 * database server once it no longer serves. Histories recorded before left the accounts in place.
 */
export const MEMBER_REVOKE_PATCH = 'sitefleet-member-revoke';

export function parallelism(group: WebGroup): number {
  return Math.max(1, group.maxParallel ?? DEFAULT_MAX_PARALLEL);
}

/** Members that receive platform code and site directories by rsync. */
export function codeReceivers(group: WebGroup): Server[] {
  return group.members.filter((m) => group.codeReceivers.includes(m.name));
}

/** Members that read the code through the pack's share. */
export function shareReaders(group: WebGroup): Server[] {
  return group.members.filter((m) => !group.codeReceivers.includes(m.name));
}

/** Checks the shape of a group against the workflow that received it. Throws a non-retryable BadInput failure. */
export function expectGroup(group: WebGroup, kind: WebGroup['kind']): void {
  if (group.kind !== kind) throw badInput(`group.kind: this workflow needs a ${kind}, got a ${group.kind}`);
  if (group.members.length === 0) throw badInput('group.members: must list at least one member');
  const names = group.members.map((m) => m.name);
  if (new Set(names).size !== names.length) throw badInput('group.members: must not list a server twice');
  for (const m of group.members) {
    if (!m.http) throw badInput(`group.members: server ${m.name} has no http service`);
  }
  if (group.codeReceivers.length === 0 || group.codeReceivers.some((n) => !names.includes(n))) {
    throw badInput('group.codeReceivers: must name members of the group');
  }
  if (kind === 'pack' && !group.share && group.members.length > 1) {
    throw badInput('group.share: a pack with slaves needs a share');
  }
}

/**
 * How a site directory on `server` keeps its uploads: in the cluster's uploads share (a link into it, the share
 * mounted or the server being the files server), or undefined for local directories (no uploads share).
 */
export function siteUploads(group: WebGroup, server: Server): { root: string; mounted: boolean } | undefined {
  return group.kind === 'cluster' && group.uploads ? uploadsRootOn(server, group.uploads, group.name) : undefined;
}
