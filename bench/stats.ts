/**
 * Summaries of timing samples. Benchmarks report the median: on a shared machine a few runs hit a busy moment,
 * and the median ignores them where the mean would not.
 */

export interface Summary {
  /** Number of samples (warm-up runs excluded). */
  n: number;
  median: number;
  min: number;
  max: number;
  mean: number;
  /** Every sample in the order it was taken, in seconds. */
  samples: number[];
}

/** The middle value (the mean of the two middle values for an even count). Throws on an empty list. */
export function median(values: readonly number[]): number {
  if (values.length === 0) throw new Error('median of no values');
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1
    ? (sorted[mid] as number)
    : ((sorted[mid - 1] as number) + (sorted[mid] as number)) / 2;
}

export function summarize(samples: readonly number[]): Summary {
  if (samples.length === 0) throw new Error('summary of no samples');
  return {
    n: samples.length,
    median: median(samples),
    min: Math.min(...samples),
    max: Math.max(...samples),
    mean: samples.reduce((a, b) => a + b, 0) / samples.length,
    samples: [...samples],
  };
}

/** a / b, or undefined when either is missing or b is zero. */
export function ratio(a: number | undefined, b: number | undefined): number | undefined {
  if (a === undefined || b === undefined || b === 0) return undefined;
  return a / b;
}
