/** `sitefleet pack ...`: one master, slaves reading its platforms over NFS. */
import { Option } from 'commander';
import type { Pack } from '../../domain/model';
import { seg } from '../api-client';
import {
  addFromFile,
  type CliContext,
  compact,
  list,
  type ListColumns,
  operation,
  readResourceFile,
  remove,
  resource,
  UsageError,
} from '../context';
import { setTransfer, type TransferFlags, transferFromFlags, withTransferFlags } from '../transfer-flags';

export const packColumns: ListColumns<Pack> = {
  header: ['NAME', 'MASTER', 'SLAVES', 'SHARE'],
  row: (p) => [
    p.name,
    p.master,
    p.slaves.join(','),
    `${p.share.server} → ${p.share.clients} (${p.share.clientFlavour})`,
  ],
};

interface PackAddOpts extends TransferFlags {
  file?: string;
  master?: string;
  slaves?: string[];
  shareServer?: string;
  clients?: string;
  exportPath?: string;
  clientFlavour?: string;
  exportToAnyone?: boolean;
}

export function packCommands(cli: CliContext): void {
  const packCmd = resource(
    cli,
    'pack',
    'packs',
    'packs: one master, slaves reading its platforms over NFS',
    packColumns,
  );
  const packAdd = addFromFile(
    packCmd
      .command('add [name]')
      .description('add a pack')
      .option('--master <server>', 'the master (receives code)')
      .option('--slaves <servers>', 'comma-separated slaves', list)
      .option('--share-server <server>', 'the NFS server (default: the master)')
      .option('--clients <cidr>', 'subnet allowed to mount the share (its network address, such as 10.0.0.0/24)')
      .option('--export-to-anyone', 'allow --clients 0.0.0.0/0: anyone who reaches the share server may mount it')
      .option('--export-path <path>', 'exported path (default /var/aegir/platforms)')
      .addOption(new Option('--client-flavour <flavour>', 'how slaves mount').choices(['kernel', 'sshfs'])),
  );
  withTransferFlags(packAdd).action(async (name: string | undefined, o: PackAddOpts) => {
    if (o.file) return cli.create('packs', readResourceFile(o.file));
    if (!name || !o.master || !o.clients)
      throw new UsageError('pack add needs NAME, --master and --clients (or --file)');
    await cli.create(
      'packs',
      compact({
        name,
        master: o.master,
        slaves: o.slaves,
        share: compact({
          server: o.shareServer ?? o.master,
          clients: o.clients,
          exportPath: o.exportPath,
          clientFlavour: o.clientFlavour,
          exportToAnyone: o.exportToAnyone,
        }),
        transfer: transferFromFlags(o),
      }),
    );
  });
  remove(cli, packCmd, 'packs', 'pack');
  setTransfer(cli, packCmd, 'packs', 'pack');
  operation(
    cli,
    packCmd,
    'setup-share',
    'set up the NFS share (SetupPackShare)',
    (n) => `/v1/packs/${seg(n)}/setup-share`,
  );
  operation(cli, packCmd, 'verify', 'verify every member (VerifyClusterNodes)', (n) => `/v1/packs/${seg(n)}/verify`);
  operation(
    cli,
    packCmd,
    'resync',
    'repair drift on every member (ResyncCluster)',
    (n) => `/v1/packs/${seg(n)}/resync`,
  );
}
