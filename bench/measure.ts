/**
 * The measuring loop: warm-up rounds, then measured rounds, each round running every contender once in turn, so
 * that a busy moment of the machine hits all contenders alike instead of one of them for all its runs.
 * Set-up and clean-up of each run are not timed. A contender that fails stops there; the others go on.
 */
import { describeBreakdown, type WorkflowBreakdown } from './history';
import { summarize, type Summary } from './stats';

export interface RunOutcome {
  seconds: number;
  /** Findings worth reporting beside the time (e.g. "report not ok"). */
  notes: string[];
  /** For a workflow: where its time went. */
  breakdown?: WorkflowBreakdown;
}

export interface Trial {
  /** Untimed, before the run. */
  prepare?: () => Promise<void>;
  /** The timed work; reports its own duration. */
  run: () => Promise<RunOutcome>;
  /** Untimed, after the run, also after a failed one. */
  cleanup?: () => Promise<void>;
}

export interface Contender {
  name: string;
  /** The work of round `round` (0-based, warm-up rounds included). */
  trial: (round: number) => Trial;
}

export interface Measured {
  summary?: Summary;
  error?: string;
  notes: string[];
  /** The breakdown of the measured run closest to the median. */
  breakdown?: WorkflowBreakdown;
}

/** The breakdown of the run whose time is closest to the median. */
export function breakdownNearMedian(
  runs: readonly { seconds: number; breakdown?: WorkflowBreakdown }[],
  median: number,
): WorkflowBreakdown | undefined {
  let best: { seconds: number; breakdown?: WorkflowBreakdown } | undefined;
  for (const run of runs) {
    if (!run.breakdown) continue;
    if (!best || Math.abs(run.seconds - median) < Math.abs(best.seconds - median)) best = run;
  }
  return best?.breakdown;
}

/** Times an async function that has no duration of its own. */
export async function timed(fn: () => Promise<unknown>): Promise<RunOutcome> {
  const started = performance.now();
  await fn();
  return { seconds: (performance.now() - started) / 1000, notes: [] };
}

export function errorText(error: unknown): string {
  if (error instanceof AggregateError) return [error.message, ...error.errors.map(errorText)].join('; ');
  if (error instanceof Error) {
    const cause = (error as Error & { cause?: unknown }).cause;
    return cause !== undefined && cause !== error ? `${error.message} (cause: ${errorText(cause)})` : error.message;
  }
  return String(error);
}

export async function measureRounds(
  label: string,
  contenders: readonly Contender[],
  options: { warmup: number; runs: number; log: (line: string) => void },
): Promise<Map<string, Measured>> {
  const samples = new Map<string, RunOutcome[]>(contenders.map((c) => [c.name, []]));
  const results = new Map<string, Measured>(contenders.map((c) => [c.name, { notes: [] }]));
  const total = options.warmup + options.runs;
  for (let round = 0; round < total; round++) {
    const warm = round < options.warmup;
    for (const contender of contenders) {
      const result = results.get(contender.name) as Measured;
      if (result.error !== undefined) continue;
      const trial = contender.trial(round);
      const tag = warm ? `warm-up ${round + 1}/${options.warmup}` : `run ${round - options.warmup + 1}/${options.runs}`;
      try {
        await trial.prepare?.();
        const outcome = await trial.run();
        if (!warm) samples.get(contender.name)?.push(outcome);
        for (const note of outcome.notes) if (!result.notes.includes(note)) result.notes.push(note);
        options.log(
          `  ${label} ${contender.name} ${tag}: ${outcome.seconds.toFixed(3)} s${outcome.notes.length ? ` (${outcome.notes[0]})` : ''}`,
        );
        if (outcome.breakdown) options.log(`      ${describeBreakdown(outcome.breakdown)}`);
      } catch (error) {
        result.error = errorText(error);
        options.log(`  ${label} ${contender.name} ${tag}: FAILED: ${result.error.slice(0, 600)}`);
      } finally {
        await trial.cleanup?.().catch((error: unknown) => {
          options.log(`  ${label} ${contender.name}: clean-up failed: ${errorText(error)}`);
        });
      }
    }
  }
  for (const [name, outcomes] of samples) {
    const result = results.get(name) as Measured;
    if (outcomes.length === 0) continue;
    result.summary = summarize(outcomes.map((o) => o.seconds));
    const breakdown = breakdownNearMedian(outcomes, result.summary.median);
    if (breakdown) result.breakdown = breakdown;
  }
  return results;
}
