/**
 * Bounded parallel fan-out over members. Deterministic: no timers, results kept in input order.
 */
export type Settled<T> = { ok: true; value: T } | { ok: false; error: unknown };

/** Runs `fn` over `items` with at most `limit` in flight; never rejects, every item gets its own result. */
export async function settleBounded<I, T>(
  items: I[],
  limit: number,
  fn: (item: I) => Promise<T>,
): Promise<Settled<T>[]> {
  const results: Settled<T>[] = new Array(items.length);
  let next = 0;
  async function lane(): Promise<void> {
    while (next < items.length) {
      const index = next++;
      try {
        results[index] = { ok: true, value: await fn(items[index] as I) };
      } catch (error) {
        results[index] = { ok: false, error };
      }
    }
  }
  await Promise.all(Array.from({ length: Math.max(1, Math.min(limit, items.length)) }, () => lane()));
  return results;
}

/** Like settleBounded but throws the first failure after every item has finished (so none is left half-done). */
export async function allBounded<I, T>(items: I[], limit: number, fn: (item: I) => Promise<T>): Promise<T[]> {
  const settled = await settleBounded(items, limit, fn);
  const failed = settled.find((s) => !s.ok);
  if (failed && !failed.ok) throw failed.error;
  return settled.map((s) => (s as { ok: true; value: T }).value);
}
