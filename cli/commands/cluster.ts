/** `sitefleet cluster ...`: every member gets everything. */
import { Option } from 'commander';
import type { Cluster } from '../../domain/model';
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
  type WaitOpts,
  withWait,
} from '../context';
import { setTransfer, type TransferFlags, transferFromFlags, withTransferFlags } from '../transfer-flags';

export const clusterColumns: ListColumns<Cluster> = {
  header: ['NAME', 'MEMBERS', 'FILES', 'LOAD BALANCER'],
  row: (c) => [c.name, c.members.join(','), c.files, c.loadBalancer ?? '-'],
};

interface ClusterAddOpts extends TransferFlags {
  file?: string;
  members?: string[];
  files?: string;
  loadBalancer?: string;
}

export function clusterCommands(cli: CliContext): void {
  const clusterCmd = resource(cli, 'cluster', 'clusters', 'clusters: every member gets everything', clusterColumns);
  const clusterAdd = addFromFile(
    clusterCmd
      .command('add [name]')
      .description('add a cluster')
      .option('--members <servers>', 'comma-separated members', list)
      .addOption(new Option('--files <strategy>', 'uploaded files').choices(['nfs-shared', 'pin-to-one', 'none']))
      .option('--load-balancer <server>', 'load balancer'),
  );
  withTransferFlags(clusterAdd).action(async (name: string | undefined, o: ClusterAddOpts) => {
    if (o.file) return cli.create('clusters', readResourceFile(o.file));
    if (!name || !o.members) throw new UsageError('cluster add needs NAME and --members (or --file)');
    await cli.create(
      'clusters',
      compact({
        name,
        members: o.members,
        files: o.files,
        loadBalancer: o.loadBalancer,
        transfer: transferFromFlags(o),
      }),
    );
  });
  remove(cli, clusterCmd, 'clusters', 'cluster');
  setTransfer(cli, clusterCmd, 'clusters', 'cluster');
  operation(
    cli,
    clusterCmd,
    'verify',
    'verify every member (VerifyClusterNodes)',
    (n) => `/v1/clusters/${seg(n)}/verify`,
  );
  operation(
    cli,
    clusterCmd,
    'resync',
    'repair drift on every member (ResyncCluster)',
    (n) => `/v1/clusters/${seg(n)}/resync`,
  );
  operation(
    cli,
    clusterCmd,
    'setup-uploads',
    "set up the cluster's uploads share: export on its files server, mount on every member (SetupClusterUploads)",
    (n) => `/v1/clusters/${seg(n)}/setup-uploads`,
  );
  withWait(
    clusterCmd
      .command('teardown-uploads <cluster>')
      .description(
        "take a cluster's uploads share down: members' mounts, fstab lines and keys, the export; the uploads stay " +
          'on the files server (TeardownClusterUploads); refused while sites are on the cluster',
      )
      .option('--force', 'take it down although sites are on the cluster (their uploads stop being served)'),
  ).action(async (cluster: string, o: WaitOpts & { force?: boolean }) =>
    cli.runOperation('POST', `/v1/clusters/${seg(cluster)}/teardown-uploads`, o.force ? { force: true } : {}, o),
  );
  withWait(clusterCmd.command('add-member <cluster> <server>').description('add a member (AddClusterMember)')).action(
    async (cluster: string, server: string, o: WaitOpts) =>
      cli.runOperation('POST', `/v1/clusters/${seg(cluster)}/members`, { server }, o),
  );
  withWait(
    clusterCmd
      .command('set-lb <cluster> <server>')
      .description('put the cluster behind a load balancer, a server with an lb service ("none": take it off)'),
  ).action(async (cluster: string, server: string, o: WaitOpts) =>
    cli.runOperation(
      'PUT',
      `/v1/clusters/${seg(cluster)}/load-balancer`,
      { server: server === 'none' ? null : server },
      o,
    ),
  );
  withWait(
    clusterCmd.command('remove-member <cluster> <server>').description('remove a member (RemoveClusterMember)'),
  ).action(async (cluster: string, server: string, o: WaitOpts) =>
    cli.runOperation('DELETE', `/v1/clusters/${seg(cluster)}/members/${seg(server)}`, undefined, o),
  );
}
