/**
 * What every `sitefleet` command shares: the terminal, the API client built from the global flags, printing,
 * starting and following operations, and the small option parsers and helpers the commands in cli/commands/ use.
 */
import { type Command, InvalidArgumentError } from 'commander';
import { readFileSync } from 'node:fs';
import { parse as parseYaml, stringify as toYaml } from 'yaml';
import type { OperationStarted } from '../api/schemas';
import { ApiClient, resolveConnection, seg } from './api-client';
import { describeStart, watchOperation } from './watch';

export interface CliIo {
  out: (line: string) => void;
  err: (line: string) => void;
  env: NodeJS.ProcessEnv;
  /** Whether a person can answer a confirmation prompt. */
  isTTY: boolean;
  /** Asks a yes/no question (only called when isTTY). */
  confirm?: (question: string) => Promise<boolean>;
}

/** A usage problem found after parsing (exit code 2). */
export class UsageError extends Error {}

/** An operation that ended other than completed (exit code 1; its failure is already printed). */
export class OperationFailed extends Error {}

export interface GlobalOpts {
  apiUrl?: string;
  token?: string;
  json?: boolean;
}
export interface WaitOpts {
  wait: boolean;
  pollInterval: number;
}

export const int = (what: string) => (v: string) => {
  if (!/^[0-9]+$/.test(v)) throw new InvalidArgumentError(`${what} must be a number`);
  return Number(v);
};
/** A decimal number such as 200 or 0.5; its range is the API's to check (it names the field and the rule). */
export const decimal = (what: string) => (v: string) => {
  if (!/^[0-9]+(\.[0-9]+)?$/.test(v)) throw new InvalidArgumentError(`${what} must be a number such as 200 or 0.5`);
  return Number(v);
};
export const list = (v: string, prev: string[] = []) => [...prev, ...v.split(',').filter((s) => s !== '')];

/** Drops undefined members so that the API applies its defaults. */
export function compact(o: Record<string, unknown>): Record<string, unknown> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined));
}

export function table(io: CliIo, header: string[], rows: string[][]): void {
  if (rows.length === 0) return io.out('(none)');
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  for (const r of [header, ...rows])
    io.out(
      r
        .map((c, i) => (c ?? '').padEnd(widths[i]!))
        .join('  ')
        .trimEnd(),
    );
}

export const readResourceFile = (file: string): unknown => parseYaml(readFileSync(file, 'utf8')) as unknown;

/** The program and what its commands do with it. */
export class CliContext {
  constructor(
    readonly program: Command,
    readonly io: CliIo,
  ) {}

  globals(): GlobalOpts {
    return this.program.opts<GlobalOpts>();
  }

  client(): ApiClient {
    return new ApiClient(resolveConnection(this.globals(), this.io.env));
  }

  print(value: unknown): void {
    if (this.globals().json) this.io.out(JSON.stringify(value, null, 2));
    else this.io.out(toYaml(value).replace(/\n$/, ''));
  }

  /** Prints a started operation and, unless --no-wait, follows it; a failed operation makes the exit code 1. */
  async runOperation(method: string, path: string, body: unknown, opts: WaitOpts): Promise<void> {
    const api = this.client();
    const { body: started } = await api.request<OperationStarted>(method, path, body);
    if (this.globals().json && !opts.wait) return this.print(started);
    for (const line of describeStart(started)) this.io.out(line);
    if (!opts.wait) return;
    const { ok } = await watchOperation(api, started.operationId, started.runId, {
      print: this.io.out,
      pollMs: opts.pollInterval,
    });
    if (!ok) throw new OperationFailed();
  }

  /** POSTs a new resource and prints what the API stored. */
  async create(plural: string, body: unknown): Promise<void> {
    const { body: created } = await this.client().request('POST', `/v1/${plural}`, body);
    if (this.globals().json) return this.print(created);
    this.io.out(`created ${plural.slice(0, -1)}:`);
    this.print(created);
  }
}

export const withWait = (cmd: Command) =>
  cmd
    .option('--no-wait', 'return once the operation has started')
    .option('--poll-interval <ms>', 'how often to poll progress', int('--poll-interval'), 1000);

/** `NAME <arg>`: POSTs an empty body to `path(arg)` and follows the operation. */
export const operation = (
  cli: CliContext,
  parent: Command,
  name: string,
  description: string,
  path: (arg: string) => string,
  arg = 'name',
) =>
  withWait(parent.command(`${name} <${arg}>`).description(description)).action(async (value: string, o: WaitOpts) =>
    cli.runOperation('POST', path(value), {}, o),
  );

/** How `list` prints one kind of resource: a header and the cells of one record. */
export interface ListColumns<T> {
  header: string[];
  row: (record: T) => string[];
}

/** `NAME list` and `NAME show KEY` of a resource the API serves under /v1/PLURAL. */
export function resource<T>(
  cli: CliContext,
  name: string,
  plural: string,
  describe: string,
  columns: ListColumns<T>,
): Command {
  const cmd = cli.program.command(name).description(describe);
  cmd
    .command('list')
    .description(`list ${plural}`)
    .action(async () => {
      const body = await cli.client().get<Partial<Record<string, T[]>>>(`/v1/${plural}`);
      const rows = body[plural] ?? [];
      if (cli.globals().json) return cli.print(rows);
      table(cli.io, columns.header, rows.map(columns.row));
    });
  cmd
    .command('show <name>')
    .description(`show one ${name}`)
    .action(async (key: string) => cli.print(await cli.client().get(`/v1/${plural}/${seg(key)}`)));
  return cmd;
}

export const addFromFile = (cmd: Command) =>
  cmd.option('-f, --file <file>', 'read the whole resource from a YAML or JSON file');

/** `NAME remove KEY`: removes an inventory record that nothing uses. */
export const remove = (cli: CliContext, cmd: Command, plural: string, what: string) =>
  cmd
    .command('remove <name>')
    .description(`remove a ${what} from the inventory (refused while anything uses it)`)
    .action(async (key: string) => {
      await cli.client().request('DELETE', `/v1/${plural}/${seg(key)}`);
      cli.io.out(`removed ${what} ${key}`);
    });

/** `NAME remove KEY` of a resource that lives on servers: a delete operation, or `--forget` the record only. */
export const removeWithOperation = (
  cli: CliContext,
  cmd: Command,
  plural: string,
  what: string,
  arg: string,
  description: string,
) =>
  cmd
    .command(`remove <${arg}>`)
    .description(description)
    .option('--forget', 'remove the inventory record only; the servers are not touched')
    .option('--no-wait', 'return once the operation has started')
    .option('--poll-interval <ms>', 'how often to poll progress', int('--poll-interval'), 1000)
    .action(async (key: string, o: WaitOpts & { forget?: boolean }) => {
      if (o.forget) {
        await cli.client().request('DELETE', `/v1/${plural}/${seg(key)}?forget=true`);
        return cli.io.out(`forgot ${what} ${key}`);
      }
      await cli.runOperation('DELETE', `/v1/${plural}/${seg(key)}`, undefined, o);
    });
