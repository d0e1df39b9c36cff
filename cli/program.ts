/**
 * The `sitefleet` command line, a client of the API: a verb for every resource (add, list, show, remove),
 * every operation (deploy, install, verify, resync, delete, enable, disable, backup, restore, migrate, setup-share,
 * member changes), schedules, operations, and `apply FILE`. Each resource's commands are in cli/commands/.
 *
 * Exit codes: 0 success; 1 refused by the API, failed operation or unreachable API; 2 usage error; 3 the operation
 * completed but reports problems (verify, resync).
 */
import { Command, CommanderError } from 'commander';
import { createInterface } from 'node:readline/promises';
import { ApiError } from './api-client';
import { ApplyFileError } from './apply';
import { applyCommand } from './commands/apply';
import { clusterCommands } from './commands/cluster';
import { operationCommands } from './commands/operation';
import { packCommands } from './commands/pack';
import { platformCommands } from './commands/platform';
import { scheduleCommands } from './commands/schedule';
import { serverCommands } from './commands/server';
import { siteCommands } from './commands/site';
import { verbCommands } from './commands/verbs';
import { CliContext, type CliIo, OperationFailed, ProblemsFound, UsageError } from './context';
import { messageOf } from '../common/error-message';
import { addHelpExamples } from './examples';

export type { CliIo } from './context';

export function buildProgram(io: CliIo): Command {
  const program = new Command('sitefleet')
    .description('Run the same PHP sites on many web servers (packs and clusters) through the sitefleet API')
    .option('--api-url <url>', 'API base URL (env SITEFLEET_API_URL; default from the API settings)')
    .option('--token <token>', 'API token (env SITEFLEET_TOKEN; default: the API token file)')
    .option('--json', 'print JSON instead of text')
    .exitOverride()
    .configureOutput({
      writeOut: (s) => io.out(s.replace(/\n$/, '')),
      writeErr: (s) => io.err(s.replace(/\n$/, '')),
    })
    .showHelpAfterError('(add --help for usage)')
    .addHelpText(
      'after',
      '\nExit codes: 0 done (a verification or resync: every check passed); 1 the operation failed, was cancelled ' +
        'or the API refused the request; 2 bad usage; 3 the operation completed but reports problems (verify, ' +
        'resync: every failed check is printed as NODE CHECK: DETAIL).',
    );
  const cli = new CliContext(program, io);
  serverCommands(cli);
  packCommands(cli);
  clusterCommands(cli);
  platformCommands(cli);
  const siteCmd = siteCommands(cli);
  verbCommands(cli, siteCmd);
  operationCommands(cli);
  scheduleCommands(cli);
  applyCommand(cli);
  addHelpExamples(program);
  return program;
}

/**
 * Runs the CLI with `argv` (without node and script), writing through `io`.
 * @returns the exit code
 */
export async function runCli(argv: string[], io: CliIo): Promise<number> {
  const program = buildProgram(io);
  try {
    await program.parseAsync(argv, { from: 'user' });
    return 0;
  } catch (err) {
    if (err instanceof CommanderError) {
      // Help and version are "errors" that exit 0.
      return err.exitCode === 0 ? 0 : 2;
    }
    if (err instanceof OperationFailed) return 1;
    if (err instanceof ProblemsFound) return 3;
    if (err instanceof UsageError) {
      io.err(`error: ${err.message}`);
      return 2;
    }
    if (err instanceof ApplyFileError) {
      io.err(`error: ${err.message}`);
      for (const p of err.problems) io.err(`  ${p.field}: ${p.rule}`);
      return 1;
    }
    if (err instanceof ApiError) {
      io.err(`error: ${err.message}`);
      for (const line of err.fieldLines) io.err(`  ${line}`);
      return 1;
    }
    io.err(`error: ${messageOf(err)}`);
    return 1;
  }
}

/** Asks on the terminal. */
export async function confirmOnTerminal(question: string): Promise<boolean> {
  const rl = createInterface({ input: process.stdin, output: process.stderr });
  try {
    return /^y(es)?$/i.test((await rl.question(`${question} [y/N] `)).trim());
  } finally {
    rl.close();
  }
}
