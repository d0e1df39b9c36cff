/**
 * The `--transfer-*` flags (domain/transfer.ts): on pack and cluster add and set-transfer, and on deploy.
 */
import { type Command, Option } from 'commander';
import { effectiveTransferOptions, TRANSFER_MODES, type TransferMode, type TransferOptions } from '../domain/transfer';
import { seg } from './api-client';
import { type CliContext, decimal, int, UsageError, type WaitOpts, withWait } from './context';

/** What commander parses from the `--transfer-*` flags. */
export interface TransferFlags {
  transferMode?: TransferMode;
  transferUplinkMbit?: number;
  transferMemberLinkMbit?: number;
  transferMinMembers?: number;
  transferMinBytes?: number;
  transferCompress?: boolean;
}

export function withTransferFlags(cmd: Command): Command {
  return cmd
    .addOption(new Option('--transfer-mode <mode>', 'how platform code is sent (default auto)').choices(TRANSFER_MODES))
    .option(
      '--transfer-uplink-mbit <mbit>',
      "the controller's upload bandwidth in Mbit/s (without it, auto always uses parallel rsync)",
      decimal('--transfer-uplink-mbit'),
    )
    .option(
      '--transfer-member-link-mbit <mbit>',
      "each member's own link in Mbit/s (default: the uplink)",
      decimal('--transfer-member-link-mbit'),
    )
    .option(
      '--transfer-min-members <n>',
      'fewest code receivers for auto to relay (default 3)',
      int('--transfer-min-members'),
    )
    .option(
      '--transfer-min-bytes <bytes>',
      'fewest bytes to send for auto to relay (default 16777216)',
      int('--transfer-min-bytes'),
    )
    .option('--transfer-compress', 'compress the relay stream with zstd (the default)')
    .option('--no-transfer-compress', 'send the relay stream uncompressed');
}

/** The transfer options the `--transfer-*` flags name, or undefined when none is given. */
export function transferFromFlags(o: TransferFlags): TransferOptions | undefined {
  return effectiveTransferOptions(undefined, {
    mode: o.transferMode,
    uplinkMbit: o.transferUplinkMbit,
    memberLinkMbit: o.transferMemberLinkMbit,
    minMembers: o.transferMinMembers,
    minBytes: o.transferMinBytes,
    compress: o.transferCompress,
  });
}

/** `deploy NAME`: the `--transfer-*` flags override the target's stored transfer options for this deployment. */
export const deploy = (cli: CliContext, parent: Command, description: string) =>
  withTransferFlags(withWait(parent.command('deploy <name>').description(description))).action(
    async (name: string, o: WaitOpts & TransferFlags) => {
      const transfer = transferFromFlags(o);
      await cli.runOperation('POST', `/v1/platforms/${seg(name)}/deploy`, transfer ? { transfer } : {}, o);
    },
  );

/**
 * `pack|cluster set-transfer NAME`: changes the stored transfer options of an existing pack or cluster (the flags
 * given replace those fields, the others are kept; `--clear` forgets every stored one first).
 */
export const setTransfer = (cli: CliContext, cmd: Command, plural: 'packs' | 'clusters', what: string) =>
  withTransferFlags(
    cmd
      .command('set-transfer <name>')
      .description(`change how platform code reaches the ${what}'s code receivers (parallel rsync or relay)`),
  )
    .option('--clear', 'forget the stored options first (parallel rsync, unless flags set new ones)')
    .action(async (key: string, o: TransferFlags & { clear?: boolean }) => {
      const given = transferFromFlags(o);
      if (!given && o.clear !== true) throw new UsageError('set-transfer needs a --transfer-* flag or --clear');
      const api = cli.client();
      const { transfer: stored, ...rest } = await api.get<Record<string, unknown> & { transfer?: TransferOptions }>(
        `/v1/${plural}/${seg(key)}`,
      );
      const transfer = effectiveTransferOptions(o.clear === true ? undefined : stored, given);
      const { body } = await api.request<{ transfer?: TransferOptions }>(
        'PUT',
        `/v1/${plural}/${seg(key)}`,
        transfer ? { ...rest, transfer } : rest,
      );
      if (cli.globals().json) return cli.print(body);
      cli.io.out(`${what} ${key} transfer options:`);
      cli.print(body.transfer ?? {});
    });
