/** Undoing what the bench set up: in reverse order, also on Ctrl-C, and a last resort when the process exits. */
import { spawn } from 'node:child_process';
import * as path from 'node:path';
import type { Bed } from '../testbed';
import { errorText } from './measure';
import { log } from './runtime';

const REPO_ROOT = path.resolve(__dirname, '..');

/**
 * Things to undo at the end, in reverse order, also on Ctrl-C. Something started while the teardown runs (a
 * start-up step that was in flight) is undone too.
 */
export class Teardown {
  private readonly steps: { name: string; fn: () => Promise<unknown> }[] = [];
  private running: Promise<void> | undefined;
  private done = false;

  push(name: string, fn: () => Promise<unknown>): void {
    if (this.done) void this.undo({ name, fn });
    else this.steps.push({ name, fn });
  }

  private undo(step: { name: string; fn: () => Promise<unknown> }): Promise<void> {
    return step.fn().then(
      () => undefined,
      (error: unknown) => log(`clean-up: ${step.name} failed: ${errorText(error)}`),
    );
  }

  run(): Promise<void> {
    this.running ??= (async () => {
      for (let step = this.steps.pop(); step; step = this.steps.pop()) await this.undo(step);
      this.done = true;
    })();
    return this.running;
  }
}

/** If the process ends any other way than through the teardown, a detached `testbed down` removes the bed. */
export function downOnExit(bed: Bed, baseDir: string): () => void {
  const handler = (): void => {
    spawn(
      process.execPath,
      ['--import', 'tsx', path.join(REPO_ROOT, 'testbed', 'cli.ts'), '--name', bed.name, '--dir', baseDir, 'down'],
      {
        cwd: REPO_ROOT,
        detached: true,
        stdio: 'ignore',
      },
    ).unref();
  };
  process.on('exit', handler);
  return () => process.off('exit', handler);
}
