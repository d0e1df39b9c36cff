/** `sitefleet operation list|show|watch|cancel`: operations started through the API. */
import type { OperationView } from '../../api/schemas';
import type { OperationRecord } from '../../inventory/store';
import { type CliContext, compact, int, OperationFailed, table } from '../context';
import { operationPath, watchOperation } from '../watch';

export function operationCommands(cli: CliContext): void {
  const opCmd = cli.program.command('operation').description('operations started through the API');
  opCmd
    .command('list')
    .description('operations, newest first')
    .option('--resource <kind/name>', 'only this resource, such as site/example.com')
    .option('--status <status>', 'only this status, such as RUNNING')
    .option('--limit <n>', 'at most this many', int('--limit'))
    .action(async (o: { resource?: string; status?: string; limit?: number }) => {
      const q = new URLSearchParams(
        compact({ resource: o.resource, status: o.status, limit: o.limit?.toString() }) as Record<string, string>,
      ).toString();
      const { operations } = await cli
        .client()
        .get<{ operations: OperationRecord[] }>(`/v1/operations${q ? `?${q}` : ''}`);
      if (cli.globals().json) return cli.print(operations);
      table(
        cli.io,
        ['OPERATION', 'TYPE', 'STATUS', 'STARTED', 'RUN'],
        operations.map((r) => [r.id, r.type, r.status, r.startedAt, r.runId]),
      );
    });
  opCmd
    .command('show <id>')
    .description('status, progress, result or failure of an operation')
    .option('--run <runId>', 'a run of the operation (default: the latest)')
    .action(async (id: string, o: { run?: string }) =>
      cli.print(await cli.client().get<OperationView>(operationPath(id, o.run))),
    );
  opCmd
    .command('watch <id>')
    .description('follow an operation until it ends; exit code 1 unless it completes')
    .option('--run <runId>', 'a run of the operation (default: the latest)')
    .option('--poll-interval <ms>', 'how often to poll progress', int('--poll-interval'), 1000)
    .action(async (id: string, o: { run?: string; pollInterval: number }) => {
      const { ok } = await watchOperation(cli.client(), id, o.run, { print: cli.io.out, pollMs: o.pollInterval });
      if (!ok) throw new OperationFailed();
    });
  opCmd
    .command('cancel <id>')
    .description('request cancellation; the workflow undoes what it did')
    .action(async (id: string) => {
      await cli.client().request('POST', `${operationPath(id)}/cancel`, {});
      cli.io.out(`cancellation of ${id} requested`);
    });
}
