/**
 * Sets the custom search attributes of the running workflow, so the Web UI finds every run of a site, platform,
 * cluster or server — whichever client or schedule started it.
 */
import type { SearchAttributeUpdatePair } from '@temporalio/common';
import { patched, upsertMemo, upsertSearchAttributes, workflowInfo } from '@temporalio/workflow';
import { CLUSTER, HEALTHY, PLATFORM, SERVER, SITE } from '../domain/search-attributes';
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

/**
 * Marks a finished verification or resync so an operator finds it: the `SitefleetHealthy` search attribute (the
 * Web UI's list: `SitefleetHealthy = false`) and a memo `findings` with the failed checks (the run's details page),
 * because the run itself completes with its report either way. Runs recorded before this mark replay without it.
 */
export function markHealth(ok: boolean, findings: string[]): void {
  if (!patched('sitefleet-healthy-mark')) return;
  upsertSearchAttributes([{ key: HEALTHY, value: ok } as unknown as SearchAttributeUpdatePair]);
  const shown = findings.slice(0, 20).map((f) => (f.length > 300 ? `${f.slice(0, 297)}...` : f));
  if (findings.length > shown.length) shown.push(`... and ${findings.length - shown.length} more`);
  upsertMemo({ findings: ok ? 'none' : shown.join('\n') });
}
