/**
 * Release names of a platform on a member (activities/releases.ts) and the choices made from a listing of them:
 * which release a rollback goes to, which ones pruning removes. Pure, so that workflows and activities share it.
 */
/** `20261206T181500Z-1a2b3c4d`: the UTC time the rollout started and its run, so that names sort by age. */
export const RELEASE_ID = /^\d{8}T\d{6}Z-[a-z0-9]{1,16}$/;

/** The name the platform directory of a member gets when it first becomes a release (older than any other). */
export const ADOPTED_RELEASE = '00000000T000000Z-adopted';
/** Suffix of a release that was switched away from by a rollback: kept for inspection, never a rollback target. */
export const ROLLED_BACK_SUFFIX = '.rolled-back';

/** A release id for a rollout that started at `startedAt` in run `runId`. */
export function releaseIdFor(startedAt: Date, runId: string): string {
  const stamp = startedAt
    .toISOString()
    .replace(/[-:]/g, '')
    .replace(/\.\d+Z$/, 'Z');
  return `${stamp}-${runId.replace(/[^a-z0-9]/g, '').slice(0, 8) || 'run'}`;
}

/** The newest release older than `current` that was not rolled back from, or undefined when there is none. */
export function previousRelease(releases: readonly string[], current: string): string | undefined {
  return releases
    .filter((r) => RELEASE_ID.test(r) && r < current)
    .sort()
    .at(-1);
}

/**
 * The releases pruning removes: all but the current one, the newest `keep` releases (the current one counts) and
 * the newest rolled-back one. Leftovers of an interrupted copy (`ID.partial`) go too.
 */
export function releasesToPrune(releases: readonly string[], current: string | null, keep: number): string[] {
  const good = releases.filter((r) => RELEASE_ID.test(r)).sort();
  const kept = new Set(good.slice(-keep));
  if (current) kept.add(current);
  const rolledBack = releases.filter((r) => r.endsWith(ROLLED_BACK_SUFFIX)).sort();
  const lastRolledBack = rolledBack.at(-1);
  if (lastRolledBack) kept.add(lastRolledBack);
  return releases.filter((r) => !kept.has(r)).sort();
}
