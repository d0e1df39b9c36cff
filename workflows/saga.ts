/**
 * Compensation stack: each completed step registers how to undo itself; on failure the undos run in reverse,
 * in a non-cancellable scope so that cancelling the workflow cannot cancel its own clean-up.
 *
 * An undo may name the server it acts on (`on`). Undos on different servers do not wait for each other: between
 * two undos that name no server (which keep their place in the order, as barriers), the undos are grouped by
 * server and the groups run at once, each newest first. So an undo waiting for a member that is down (its stub
 * retries for up to an hour) does not hold back the undos on the members and the database server that are up.
 */
import { CancellationScope, log } from '@temporalio/workflow';
import { describeFailure } from './failures';

interface Undo {
  name: string;
  fn: () => Promise<unknown>;
  /** The server this undo acts on; undefined: it may touch anything, and runs alone. */
  on?: string;
}

export class Saga {
  private readonly undo: Undo[] = [];
  /** The failed undos of the last compensate(), by the server they act on ('' for those that name none). */
  readonly failedOn = new Map<string, string[]>();

  /**
   * Registers the undo of a step that has just completed. Undos must be idempotent. `on`: the one server the undo
   * acts on (a member, the database server, the share server), so that it can run beside undos on other servers.
   */
  add(name: string, fn: () => Promise<unknown>, options: { on?: string } = {}): void {
    this.undo.push({ name, fn, ...(options.on !== undefined ? { on: options.on } : {}) });
  }

  /** Runs every registered undo (see above for the order); a failed undo is logged and the rest still run. */
  async compensate(): Promise<string[]> {
    const failures: string[] = [];
    const run = async ({ name, fn, on }: Undo): Promise<void> => {
      try {
        await fn();
      } catch (err) {
        const message = describeFailure(err);
        log.error('compensation failed', { step: name, error: message });
        failures.push(`${name}: ${message}`);
        this.failedOn.set(on ?? '', [...(this.failedOn.get(on ?? '') ?? []), `${name}: ${message}`]);
      }
    };
    this.failedOn.clear();
    await CancellationScope.nonCancellable(async () => {
      const pending = [...this.undo].reverse();
      while (pending.length > 0) {
        if ((pending[0] as Undo).on === undefined) {
          await run(pending.shift() as Undo);
          continue;
        }
        // The undos up to the next barrier, one lane per server (in the order the servers first appear).
        const lanes = new Map<string, Undo[]>();
        while (pending.length > 0 && (pending[0] as Undo).on !== undefined) {
          const next = pending.shift() as Undo;
          const lane = lanes.get(next.on as string) ?? [];
          lane.push(next);
          lanes.set(next.on as string, lane);
        }
        await Promise.all(
          [...lanes.values()].map(async (lane) => {
            for (const u of lane) await run(u);
          }),
        );
      }
    });
    this.undo.length = 0;
    return failures;
  }
}
