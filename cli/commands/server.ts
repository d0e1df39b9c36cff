/** `sitefleet server ...`: servers reached over ssh. */
import { Option } from 'commander';
import type { Server } from '../../domain/model';
import { seg } from '../api-client';
import {
  addFromFile,
  type CliContext,
  compact,
  int,
  type ListColumns,
  operation,
  readResourceFile,
  remove,
  resource,
  UsageError,
} from '../context';
import { repinServer, RepinRefused } from '../repin';

export const serverColumns: ListColumns<Server> = {
  header: ['NAME', 'HOST', 'SSH', 'SERVICES', 'HOST KEY'],
  row: (s) => {
    const services = [
      s.http ? `http:${s.http.type}` : undefined,
      s.db ? `db:${s.db.type}` : undefined,
      s.nfs ? `nfs:${s.nfs.flavour}` : undefined,
    ].filter((x) => x !== undefined);
    return [s.name, s.host, `${s.ssh.user}@:${s.ssh.port}`, services.join(','), s.ssh.hostKey];
  },
};

interface ServerAddOpts {
  file?: string;
  host?: string;
  sshUser?: string;
  sshPort?: number;
  keyPath?: string;
  hostKey?: string;
  address?: string;
  http?: string;
  httpPort?: number;
  httpsPort?: number;
  httpsCertificate?: string;
  httpsKey?: string;
  phpFpmSocket?: string;
  db?: string;
  dbPort?: number;
  nfs?: string;
  aegirRoot?: string;
  aegirUser?: string;
}

export function serverCommands(cli: CliContext): void {
  const serverCmd = resource(cli, 'server', 'servers', 'servers reached over ssh', serverColumns);
  addFromFile(
    serverCmd
      .command('add [name]')
      .description('register a server; without --host-key the API fetches and pins the key the server offers')
      .option('--host <host>', 'IP address or DNS name')
      .option('--ssh-user <user>', 'ssh user (default root)')
      .option('--ssh-port <port>', 'ssh port (default 22)', int('--ssh-port'))
      .option('--key-path <path>', 'private key on the controller')
      .option('--host-key <fingerprint>', 'pin this SHA256 fingerprint instead of fetching it')
      .option('--address <host>', 'address web nodes use to reach this server (default: host)')
      .addOption(new Option('--http <type>', 'web server').choices(['nginx', 'apache']))
      .option('--http-port <port>', 'http port', int('--http-port'))
      .option('--https-port <port>', 'https port', int('--https-port'))
      .option('--https-certificate <path>', 'certificate for https vhosts')
      .option('--https-key <path>', 'key for https vhosts')
      .option('--php-fpm-socket <path>', 'php-fpm socket')
      .addOption(new Option('--db <type>', 'database server').choices(['mariadb', 'mysql']))
      .option('--db-port <port>', 'database port', int('--db-port'))
      .addOption(new Option('--nfs <flavour>', 'NFS server').choices(['kernel', 'ganesha']))
      .option('--aegir-root <path>', 'Aegir root (default /var/aegir)')
      .option('--aegir-user <user>', 'Aegir user (default aegir)'),
  ).action(async (name: string | undefined, o: ServerAddOpts) => {
    if (o.file) return cli.create('servers', readResourceFile(o.file));
    if (!name || !o.host) throw new UsageError('server add needs NAME and --host (or --file)');
    const body = compact({
      name,
      host: o.host,
      ssh: compact({ user: o.sshUser, port: o.sshPort, keyPath: o.keyPath, hostKey: o.hostKey }),
      address: o.address,
      http: o.http
        ? compact({
            type: o.http,
            port: o.httpPort,
            phpFpmSocket: o.phpFpmSocket,
            https: o.httpsCertificate
              ? compact({ port: o.httpsPort, certificate: o.httpsCertificate, key: o.httpsKey })
              : undefined,
          })
        : undefined,
      db: o.db ? compact({ type: o.db, port: o.dbPort }) : undefined,
      nfs: o.nfs ? { flavour: o.nfs } : undefined,
      aegirRoot: o.aegirRoot,
      aegirUser: o.aegirUser,
    });
    await cli.create('servers', body);
  });
  remove(cli, serverCmd, 'servers', 'server');
  operation(cli, serverCmd, 'verify', 'verify a server (VerifyServer)', (n) => `/v1/servers/${seg(n)}/verify`);
  serverCmd
    .command('repin <name>')
    .description('show the ssh host key the server offers now beside the pinned one, and pin the new one')
    .option('-y, --yes', 'pin the offered key without asking (needed without a terminal)')
    .action(async (name: string, o: { yes?: boolean }) => {
      const { io } = cli;
      try {
        await repinServer(cli.client(), name, Boolean(o.yes), {
          out: io.out,
          ...(io.isTTY && io.confirm ? { confirm: io.confirm } : {}),
        });
      } catch (err) {
        if (err instanceof RepinRefused) throw new UsageError(err.message);
        throw err;
      }
    });
}
