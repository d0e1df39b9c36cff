/** `sitefleet apply FILE`: make the inventory and the servers match a YAML description (cli/apply.ts). */
import { executePlan, formatPlan, planApply, planIsEmpty, readApplyFile } from '../apply';
import { type CliContext, int, OperationFailed, UsageError } from '../context';
import { FLEET_EXAMPLE } from '../fleet-doc';

interface ApplyOpts {
  example?: boolean;
  yes?: boolean;
  plan?: boolean;
  operations: boolean;
  pollInterval: number;
}

export function applyCommand(cli: CliContext): void {
  const { io } = cli;
  cli.program
    .command('apply [file]')
    .description(
      'make the inventory and the servers match a YAML description (servers, packs, clusters, platforms, sites, schedules); every field: docs/fleet-file.md',
    )
    .option('--example', 'print a complete example description (WordPress on a 3-node cluster and a 1+2 pack) and exit')
    .option('-y, --yes', 'do not ask for confirmation (needed without a terminal)')
    .option('--plan', 'print the plan and change nothing')
    .option('--no-operations', 'write the inventory only; start no operation')
    .option('--poll-interval <ms>', 'how often to poll progress', int('--poll-interval'), 1000)
    .action(async (file: string | undefined, o: ApplyOpts) => {
      if (o.example) return io.out(FLEET_EXAMPLE.trimEnd());
      if (!file) throw new UsageError('apply needs FILE (or --example, to print one to start from)');
      const description = readApplyFile(file);
      const api = cli.client();
      const plan = await planApply(api, description);
      for (const line of formatPlan(plan, { color: io.isTTY && !io.env.NO_COLOR })) io.out(line);
      if (o.plan) return;
      if (planIsEmpty(plan)) return io.out('nothing to change');
      if (!o.yes) {
        if (!io.isTTY || !io.confirm) throw new UsageError('no terminal to confirm the plan; rerun with --yes');
        if (!(await io.confirm('Apply this plan?'))) return io.out('not applied');
      }
      const ok = await executePlan(api, plan, {
        print: io.out,
        pollMs: o.pollInterval,
        runOperations: o.operations,
      });
      if (!ok) throw new OperationFailed();
      io.out('applied');
    });
}
