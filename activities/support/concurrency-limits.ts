/**
 * Bounded concurrency inside one worker process: a counting semaphore and a per-key lock. (The bounded fan-out
 * over many items is common/settle.ts, shared with the workflows.)
 */

/** A counting semaphore: at most `limit` holders at once, the rest wait in arrival order. */
export class Semaphore {
  private active = 0;
  private readonly waiting: (() => void)[] = [];

  constructor(private readonly limit: number) {
    if (!Number.isInteger(limit) || limit < 1)
      throw new Error(`semaphore limit must be a positive integer, not ${limit}`);
  }

  async acquire(): Promise<() => void> {
    if (this.active >= this.limit) await new Promise<void>((resolve) => this.waiting.push(resolve));
    else this.active++;
    let released = false;
    return () => {
      if (released) return;
      released = true;
      const next = this.waiting.shift();
      if (next) next();
      else this.active--;
    };
  }

  async run<T>(fn: () => Promise<T>): Promise<T> {
    const release = await this.acquire();
    try {
      return await fn();
    } finally {
      release();
    }
  }
}

const locks = new Map<string, { semaphore: Semaphore; users: number }>();

/** Runs `fn` while holding the lock named `key` in this process (one holder at a time per key). */
export async function withKeyedLock<T>(key: string, fn: () => Promise<T>): Promise<T> {
  let entry = locks.get(key);
  if (!entry) {
    entry = { semaphore: new Semaphore(1), users: 0 };
    locks.set(key, entry);
  }
  entry.users++;
  try {
    return await entry.semaphore.run(fn);
  } finally {
    entry.users--;
    if (entry.users === 0) locks.delete(key);
  }
}
