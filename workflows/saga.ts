/**
 * Compensation stack: each completed step registers how to undo itself; on failure the undos run in reverse,
 * in a non-cancellable scope so that cancelling the workflow cannot cancel its own clean-up.
 */
import { CancellationScope, log } from '@temporalio/workflow';
import { describeFailure } from './failures';

export class Saga {
  private readonly undo: { name: string; fn: () => Promise<unknown> }[] = [];

  /** Registers the undo of a step that has just completed. Undos must be idempotent. */
  add(name: string, fn: () => Promise<unknown>): void {
    this.undo.push({ name, fn });
  }

  /** Runs every registered undo, newest first; a failed undo is logged and the rest still run. */
  async compensate(): Promise<string[]> {
    const failures: string[] = [];
    await CancellationScope.nonCancellable(async () => {
      for (const { name, fn } of [...this.undo].reverse()) {
        try {
          await fn();
        } catch (err) {
          const message = describeFailure(err);
          log.error('compensation failed', { step: name, error: message });
          failures.push(`${name}: ${message}`);
        }
      }
    });
    this.undo.length = 0;
    return failures;
  }
}
