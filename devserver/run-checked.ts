/**
 * The dev stack's synchronous command runner (stack.ts, stack-temporal.ts, postgres.ts): an argument list, never a
 * shell string; a failure throws with the command's output (arguments naming a password left out).
 */
import { spawnSync } from 'node:child_process';

export interface CheckedOptions {
  uid?: number;
  gid?: number;
  cwd?: string;
  /** @default this process's environment with LC_ALL=C.UTF-8 */
  env?: NodeJS.ProcessEnv;
}

/** Runs `cmd` and returns its stdout. @throws Error when it does not exit 0 */
export function runChecked(cmd: string, args: string[], opts: CheckedOptions = {}): string {
  const res = spawnSync(cmd, args, {
    encoding: 'utf8',
    ...opts,
    env: opts.env ?? { ...process.env, LC_ALL: 'C.UTF-8' },
  });
  if (res.status !== 0) {
    throw new Error(
      `${cmd} ${args.filter((a) => !a.includes('assword')).join(' ')} failed:\n${res.stdout}${res.stderr}`,
    );
  }
  return res.stdout;
}
