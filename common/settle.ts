/**
 * Bounded parallel fan-out, for workflows and activities alike: at most N in flight, every item gets its own
 * result, in input order. Deterministic (no timers, no Node builtins), so workflow code may use it.
 */
export type Settled<T> = { ok: true; value: T } | { ok: false; error: unknown };

/**
 * Runs `fn` over `items` with at most `limit` in flight. Never rejects: every item gets its own result, in input
 * order, so one failing host neither stops nor hides the others.
 */
export async function settleBounded<I, T>(
  items: readonly I[],
  limit: number,
  fn: (item: I, index: number) => Promise<T>,
): Promise<Settled<T>[]> {
  const results = new Array<Settled<T>>(items.length);
  let next = 0;
  async function lane(): Promise<void> {
    while (next < items.length) {
      const index = next++;
      try {
        results[index] = { ok: true, value: await fn(items[index] as I, index) };
      } catch (error) {
        results[index] = { ok: false, error };
      }
    }
  }
  const lanes = Math.max(1, Math.min(Math.floor(limit) || 1, items.length));
  await Promise.all(Array.from({ length: lanes }, () => lane()));
  return results;
}

/** Like settleBounded but throws the first failure after every item has finished (so none is left half-done). */
export async function allBounded<I, T>(
  items: readonly I[],
  limit: number,
  fn: (item: I, index: number) => Promise<T>,
): Promise<T[]> {
  const settled = await settleBounded(items, limit, fn);
  const failed = settled.find((s) => !s.ok);
  if (failed && !failed.ok) throw failed.error;
  return settled.map((s) => (s as { ok: true; value: T }).value);
}
