/** `sitefleet schedule ...`: scheduled resync and verify of packs and clusters. */
import type { ScheduleView } from '../../api/schemas';
import { type CliContext, compact, table } from '../context';

const schedPath = (id: string) => `/v1/schedules/${id.split('/').map(encodeURIComponent).join('/')}`;

export function scheduleCommands(cli: CliContext): void {
  const schedCmd = cli.program.command('schedule').description('scheduled resync and verify of packs and clusters');
  schedCmd
    .command('add <action> <kind> <name>')
    .description('create or update: ACTION resync|verify, KIND pack|cluster')
    .requiredOption('--every <interval>', 'interval such as 15m, 6h, 1d')
    .option('--paused', 'create it paused')
    .option('--note <text>', 'a note shown with the schedule')
    .action(
      async (action: string, kind: string, name: string, o: { every: string; paused?: boolean; note?: string }) => {
        const { body, status } = await cli
          .client()
          .request<ScheduleView>(
            'POST',
            '/v1/schedules',
            compact({ action, target: { kind, name }, every: o.every, paused: o.paused === true, note: o.note }),
          );
        if (cli.globals().json) return cli.print(body);
        cli.io.out(`${status === 201 ? 'created' : 'updated'} schedule ${body.scheduleId} every ${body.every ?? '?'}`);
      },
    );
  schedCmd
    .command('list')
    .description('list schedules')
    .action(async () => {
      const { schedules } = await cli.client().get<{ schedules: ScheduleView[] }>('/v1/schedules');
      if (cli.globals().json) return cli.print(schedules);
      table(
        cli.io,
        ['SCHEDULE', 'EVERY', 'STATE', 'NEXT'],
        schedules.map((s) => [
          s.scheduleId,
          s.every ?? '-',
          s.paused ? 'paused' : 'active',
          s.nextActionTimes[0] ?? '-',
        ]),
      );
    });
  schedCmd
    .command('show <id>')
    .description('show a schedule (id ACTION/KIND/NAME)')
    .action(async (id: string) => cli.print(await cli.client().get(schedPath(id))));
  schedCmd
    .command('set <id>')
    .description('change the interval of a schedule')
    .requiredOption('--every <interval>', 'interval such as 15m, 6h, 1d')
    .action(async (id: string, o: { every: string }) => {
      await cli.client().request('PATCH', schedPath(id), { every: o.every });
      cli.io.out(`schedule ${id} now every ${o.every}`);
    });
  for (const [verb, paused] of [
    ['pause', true],
    ['unpause', false],
  ] as const) {
    schedCmd
      .command(`${verb} <id>`)
      .description(`${verb} a schedule`)
      .option('--note <text>', 'why')
      .action(async (id: string, o: { note?: string }) => {
        await cli.client().request('PATCH', schedPath(id), compact({ paused, note: o.note }));
        cli.io.out(`schedule ${id} ${paused ? 'paused' : 'unpaused'}`);
      });
  }
  schedCmd
    .command('remove <id>')
    .description('delete a schedule')
    .action(async (id: string) => {
      await cli.client().request('DELETE', schedPath(id));
      cli.io.out(`schedule ${id} removed`);
    });
}
