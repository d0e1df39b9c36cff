/**
 * Sets the custom search attributes of the running workflow, so the Web UI finds every run of a site, platform,
 * cluster or server — whichever client or schedule started it.
 */
import type { SearchAttributeUpdatePair } from '@temporalio/common';
import { upsertSearchAttributes, workflowInfo } from '@temporalio/workflow';
import { CLUSTER, PLATFORM, SERVER, SITE } from '../domain/search-attributes';
import type { WebGroup } from '../domain/operations';

export function tagRun(tags: { site?: string; platform?: string; group?: WebGroup; servers?: string[] }): void {
  const current = workflowInfo().typedSearchAttributes;
  const updates: SearchAttributeUpdatePair[] = [];
  const set = <T>(pair: { key: { name: string; type: string }; value: T }) => {
    // The API sets richer values at start (every server an operation touches); only fill what is missing.
    if (current.get(pair.key as never) === undefined) {
      updates.push(pair as unknown as SearchAttributeUpdatePair);
    }
  };
  if (tags.site) set({ key: SITE, value: tags.site });
  if (tags.platform) set({ key: PLATFORM, value: tags.platform });
  if (tags.group && tags.group.kind !== 'server') set({ key: CLUSTER, value: tags.group.name });
  const servers = tags.servers ?? tags.group?.members.map((m) => m.name) ?? [];
  if (servers.length > 0) set({ key: SERVER, value: servers });
  if (updates.length > 0) upsertSearchAttributes(updates);
}
