/**
 * The `sitefleet` command line, a client of the API: a verb for every resource (add, list, show, remove),
 * every operation (deploy, install, verify, resync, delete, enable, disable, backup, restore, migrate, setup-share,
 * member changes), schedules, operations, and `apply FILE`.
 *
 * Exit codes: 0 success; 1 refused by the API, failed operation or unreachable API; 2 usage error.
 */
import { Command, CommanderError, InvalidArgumentError, Option } from 'commander';
import { createInterface } from 'node:readline/promises';
import { readFileSync } from 'node:fs';
import { parse as parseYaml, stringify as toYaml } from 'yaml';
import type { OperationStarted, OperationView, ScheduleView } from '../api/schemas';
import { effectiveTransferOptions, TRANSFER_MODES, type TransferOptions } from '../domain/transfer';
import type { OperationRecord } from '../inventory/store';
import { ApiClient, ApiError, resolveConnection, seg } from './api-client';
import { ApplyFileError, executePlan, formatPlan, planApply, planIsEmpty, readApplyFile } from './apply';
import { describeStart, operationPath, watchOperation } from './watch';

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
class UsageError extends Error {}

const int = (what: string) => (v: string) => {
  if (!/^[0-9]+$/.test(v)) throw new InvalidArgumentError(`${what} must be a number`);
  return Number(v);
};
/** A decimal number such as 200 or 0.5; its range is the API's to check (it names the field and the rule). */
const decimal = (what: string) => (v: string) => {
  if (!/^[0-9]+(\.[0-9]+)?$/.test(v)) throw new InvalidArgumentError(`${what} must be a number such as 200 or 0.5`);
  return Number(v);
};
const list = (v: string, prev: string[] = []) => [...prev, ...v.split(',').filter((s) => s !== '')];

/** The `--transfer-*` flags (domain/transfer.ts): on pack and cluster add and set-transfer, and on deploy. */
function withTransferFlags(cmd: Command): Command {
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
function transferFromFlags(o: Record<string, unknown>): TransferOptions | undefined {
  return effectiveTransferOptions(undefined, {
    mode: o.transferMode as TransferOptions['mode'],
    uplinkMbit: o.transferUplinkMbit as number | undefined,
    memberLinkMbit: o.transferMemberLinkMbit as number | undefined,
    minMembers: o.transferMinMembers as number | undefined,
    minBytes: o.transferMinBytes as number | undefined,
    compress: o.transferCompress as boolean | undefined,
  });
}

interface GlobalOpts {
  apiUrl?: string;
  token?: string;
  json?: boolean;
}
interface WaitOpts {
  wait: boolean;
  pollInterval: number;
}

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
    .showHelpAfterError('(add --help for usage)');

  const globals = (): GlobalOpts => program.opts<GlobalOpts>();
  const client = () => new ApiClient(resolveConnection(globals(), io.env));
  const print = (value: unknown) => {
    if (globals().json) io.out(JSON.stringify(value, null, 2));
    else io.out(toYaml(value).replace(/\n$/, ''));
  };

  /** Prints a started operation and, unless --no-wait, follows it; a failed operation makes the exit code 1. */
  const runOperation = async (method: string, path: string, body: unknown, opts: WaitOpts): Promise<void> => {
    const api = client();
    const { body: started } = await api.request<OperationStarted>(method, path, body);
    if (globals().json && !opts.wait) return print(started);
    for (const line of describeStart(started)) io.out(line);
    if (!opts.wait) return;
    const { ok } = await watchOperation(api, started.operationId, started.runId, {
      print: io.out,
      pollMs: opts.pollInterval,
    });
    if (!ok) throw new OperationFailed();
  };
  const withWait = (cmd: Command) =>
    cmd
      .option('--no-wait', 'return once the operation has started')
      .option('--poll-interval <ms>', 'how often to poll progress', int('--poll-interval'), 1000);

  const operation = (parent: Command, name: string, description: string, path: (arg: string) => string, arg = 'name') =>
    withWait(parent.command(`${name} <${arg}>`).description(description)).action(async (value: string, o: WaitOpts) =>
      runOperation('POST', path(value), {}, o),
    );
  /** `deploy NAME`: the `--transfer-*` flags override the target's stored transfer options for this deployment. */
  const deploy = (parent: Command, description: string) =>
    withTransferFlags(withWait(parent.command('deploy <name>').description(description))).action(
      async (name: string, o: WaitOpts & Record<string, unknown>) => {
        const transfer = transferFromFlags(o);
        await runOperation('POST', `/v1/platforms/${seg(name)}/deploy`, transfer ? { transfer } : {}, o);
      },
    );

  // ---- resources ----

  const resource = (
    name: string,
    plural: string,
    describe: string,
    columns: (r: Record<string, unknown>) => string[],
    header: string[],
  ) => {
    const cmd = program.command(name).description(describe);
    cmd
      .command('list')
      .description(`list ${plural}`)
      .action(async () => {
        const body = await client().get<Record<string, Record<string, unknown>[]>>(`/v1/${plural}`);
        const rows = body[plural] ?? [];
        if (globals().json) return print(rows);
        table(io, header, rows.map(columns));
      });
    cmd
      .command('show <name>')
      .description(`show one ${name}`)
      .action(async (key: string) => print(await client().get(`/v1/${plural}/${seg(key)}`)));
    return cmd;
  };

  const addFromFile = (cmd: Command) =>
    cmd.option('-f, --file <file>', 'read the whole resource from a YAML or JSON file');
  const readResourceFile = (file: string): unknown => parseYaml(readFileSync(file, 'utf8')) as unknown;
  const create = async (plural: string, body: unknown) => {
    const { body: created } = await client().request('POST', `/v1/${plural}`, body);
    if (globals().json) return print(created);
    io.out(`created ${plural.slice(0, -1)}:`);
    print(created);
  };
  const remove = (cmd: Command, plural: string, what: string) =>
    cmd
      .command('remove <name>')
      .description(`remove a ${what} from the inventory (refused while anything uses it)`)
      .action(async (key: string) => {
        await client().request('DELETE', `/v1/${plural}/${seg(key)}`);
        io.out(`removed ${what} ${key}`);
      });

  /**
   * `pack|cluster set-transfer NAME`: changes the stored transfer options of an existing pack or cluster (the flags
   * given replace those fields, the others are kept; `--clear` forgets every stored one first).
   */
  const setTransfer = (cmd: Command, plural: 'packs' | 'clusters', what: string) =>
    withTransferFlags(
      cmd
        .command('set-transfer <name>')
        .description(`change how platform code reaches the ${what}'s code receivers (parallel rsync or relay)`),
    )
      .option('--clear', 'forget the stored options first (parallel rsync, unless flags set new ones)')
      .action(async (key: string, o: Record<string, unknown>) => {
        const given = transferFromFlags(o);
        if (!given && o.clear !== true) throw new UsageError('set-transfer needs a --transfer-* flag or --clear');
        const api = client();
        const { transfer: stored, ...rest } = await api.get<Record<string, unknown> & { transfer?: TransferOptions }>(
          `/v1/${plural}/${seg(key)}`,
        );
        const transfer = effectiveTransferOptions(o.clear === true ? undefined : stored, given);
        const { body } = await api.request<{ transfer?: TransferOptions }>(
          'PUT',
          `/v1/${plural}/${seg(key)}`,
          transfer ? { ...rest, transfer } : rest,
        );
        if (globals().json) return print(body);
        io.out(`${what} ${key} transfer options:`);
        print(body.transfer ?? {});
      });

  // server
  const serverCmd = resource(
    'server',
    'servers',
    'servers reached over ssh',
    (s) => {
      const ssh = s.ssh as { user: string; port: number; hostKey: string };
      const services = ['http', 'db', 'nfs']
        .filter((k) => s[k])
        .map(
          (k) => `${k}:${(s[k] as { type?: string; flavour?: string }).type ?? (s[k] as { flavour?: string }).flavour}`,
        );
      return [String(s.name), String(s.host), `${ssh.user}@:${ssh.port}`, services.join(','), ssh.hostKey];
    },
    ['NAME', 'HOST', 'SSH', 'SERVICES', 'HOST KEY'],
  );
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
  ).action(async (name: string | undefined, o: Record<string, string | number | undefined>) => {
    if (o.file) return create('servers', readResourceFile(String(o.file)));
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
    await create('servers', body);
  });
  remove(serverCmd, 'servers', 'server');
  operation(serverCmd, 'verify', 'verify a server (VerifyServer)', (n) => `/v1/servers/${seg(n)}/verify`);

  // pack
  const packCmd = resource(
    'pack',
    'packs',
    'packs: one master, slaves reading its platforms over NFS',
    (p) => {
      const share = p.share as { server: string; clients: string; clientFlavour: string };
      return [
        String(p.name),
        String(p.master),
        (p.slaves as string[]).join(','),
        `${share.server} → ${share.clients} (${share.clientFlavour})`,
      ];
    },
    ['NAME', 'MASTER', 'SLAVES', 'SHARE'],
  );
  const packAdd = addFromFile(
    packCmd
      .command('add [name]')
      .description('add a pack')
      .option('--master <server>', 'the master (receives code)')
      .option('--slaves <servers>', 'comma-separated slaves', list)
      .option('--share-server <server>', 'the NFS server (default: the master)')
      .option('--clients <cidr>', 'subnet allowed to mount the share')
      .option('--export-path <path>', 'exported path (default /var/aegir/platforms)')
      .addOption(new Option('--client-flavour <flavour>', 'how slaves mount').choices(['kernel', 'sshfs'])),
  );
  withTransferFlags(packAdd).action(async (name: string | undefined, o: Record<string, unknown>) => {
    if (o.file) return create('packs', readResourceFile(String(o.file)));
    if (!name || !o.master || !o.clients)
      throw new UsageError('pack add needs NAME, --master and --clients (or --file)');
    await create(
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
        }),
        transfer: transferFromFlags(o),
      }),
    );
  });
  remove(packCmd, 'packs', 'pack');
  setTransfer(packCmd, 'packs', 'pack');
  operation(packCmd, 'setup-share', 'set up the NFS share (SetupPackShare)', (n) => `/v1/packs/${seg(n)}/setup-share`);
  operation(packCmd, 'verify', 'verify every member (VerifyClusterNodes)', (n) => `/v1/packs/${seg(n)}/verify`);
  operation(packCmd, 'resync', 'repair drift on every member (ResyncCluster)', (n) => `/v1/packs/${seg(n)}/resync`);

  // cluster
  const clusterCmd = resource(
    'cluster',
    'clusters',
    'clusters: every member gets everything',
    (c) => [String(c.name), (c.members as string[]).join(','), String(c.files), String(c.loadBalancer ?? '-')],
    ['NAME', 'MEMBERS', 'FILES', 'LOAD BALANCER'],
  );
  const clusterAdd = addFromFile(
    clusterCmd
      .command('add [name]')
      .description('add a cluster')
      .option('--members <servers>', 'comma-separated members', list)
      .addOption(new Option('--files <strategy>', 'uploaded files').choices(['nfs-shared', 'pin-to-one', 'none']))
      .option('--load-balancer <server>', 'load balancer'),
  );
  withTransferFlags(clusterAdd).action(async (name: string | undefined, o: Record<string, unknown>) => {
    if (o.file) return create('clusters', readResourceFile(String(o.file)));
    if (!name || !o.members) throw new UsageError('cluster add needs NAME and --members (or --file)');
    await create(
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
  remove(clusterCmd, 'clusters', 'cluster');
  setTransfer(clusterCmd, 'clusters', 'cluster');
  operation(clusterCmd, 'verify', 'verify every member (VerifyClusterNodes)', (n) => `/v1/clusters/${seg(n)}/verify`);
  operation(
    clusterCmd,
    'resync',
    'repair drift on every member (ResyncCluster)',
    (n) => `/v1/clusters/${seg(n)}/resync`,
  );
  withWait(clusterCmd.command('add-member <cluster> <server>').description('add a member (AddClusterMember)')).action(
    async (cluster: string, server: string, o: WaitOpts) =>
      runOperation('POST', `/v1/clusters/${seg(cluster)}/members`, { server }, o),
  );
  withWait(
    clusterCmd
      .command('set-lb <cluster> <server>')
      .description('put the cluster behind a load balancer, a server with an lb service ("none": take it off)'),
  ).action(async (cluster: string, server: string, o: WaitOpts) =>
    runOperation('PUT', `/v1/clusters/${seg(cluster)}/load-balancer`, { server: server === 'none' ? null : server }, o),
  );
  withWait(
    clusterCmd.command('remove-member <cluster> <server>').description('remove a member (RemoveClusterMember)'),
  ).action(async (cluster: string, server: string, o: WaitOpts) =>
    runOperation('DELETE', `/v1/clusters/${seg(cluster)}/members/${seg(server)}`, undefined, o),
  );

  // platform
  const platformCmd = resource(
    'platform',
    'platforms',
    'platforms: codebases deployed on a server, pack or cluster',
    (p) => {
      const t = p.target as { kind: string; name: string };
      const s = p.source as { type: string; url?: string; path?: string; ref?: string };
      return [
        String(p.name),
        `${t.kind}:${t.name}`,
        String(p.profile),
        `${s.type}:${s.url ?? s.path ?? ''}${s.ref ? `#${s.ref}` : ''}`,
      ];
    },
    ['NAME', 'TARGET', 'PROFILE', 'SOURCE'],
  );
  addFromFile(
    platformCmd
      .command('add [name]')
      .description('add a platform')
      .option('--target <kind:name>', 'where it lives: server:NAME, pack:NAME or cluster:NAME')
      .option('--git <url>', 'git source')
      .option('--ref <ref>', 'git ref (default main)')
      .option('--tarball <url>', 'tarball source')
      .option('--path <path>', 'source directory on the controller')
      .addOption(new Option('--profile <profile>', 'kind of code').choices(['wordpress', 'drupal', 'php', 'static'])),
  ).action(async (name: string | undefined, o: Record<string, string | undefined>) => {
    if (o.file) return create('platforms', readResourceFile(o.file));
    const [kind, target] = (o.target ?? '').split(':');
    if (!name || !kind || !target || !o.profile) {
      throw new UsageError('platform add needs NAME, --target KIND:NAME, --profile and a source (or --file)');
    }
    const sources = [
      o.git ? compact({ type: 'git', url: o.git, ref: o.ref }) : undefined,
      o.tarball ? { type: 'tarball', url: o.tarball } : undefined,
      o.path ? { type: 'path', path: o.path } : undefined,
    ].filter(Boolean);
    if (sources.length !== 1) throw new UsageError('platform add needs exactly one of --git, --tarball, --path');
    await create('platforms', { name, target: { kind, name: target }, source: sources[0], profile: o.profile });
  });
  platformCmd
    .command('remove <name>')
    .description('delete a platform from its servers, then from the inventory (refused while sites exist)')
    .option('--forget', 'remove the inventory record only; the servers are not touched')
    .option('--no-wait', 'return once the operation has started')
    .option('--poll-interval <ms>', 'how often to poll progress', int('--poll-interval'), 1000)
    .action(async (name: string, o: WaitOpts & { forget?: boolean }) => {
      if (o.forget) {
        await client().request('DELETE', `/v1/platforms/${seg(name)}?forget=true`);
        return io.out(`forgot platform ${name}`);
      }
      await runOperation('DELETE', `/v1/platforms/${seg(name)}`, undefined, o);
    });
  deploy(platformCmd, 'deploy the platform on its target');

  // site
  const siteCmd = resource(
    'site',
    'sites',
    'sites: domains served from a platform',
    (s) => [
      String(s.domain),
      String(s.platform),
      String(s.dbServer ?? '-'),
      s.https ? 'https' : 'http',
      String(s.status),
      (s.aliases as string[]).join(','),
    ],
    ['DOMAIN', 'PLATFORM', 'DB', 'SCHEME', 'STATUS', 'ALIASES'],
  );
  addFromFile(
    siteCmd
      .command('add [domain]')
      .description('add a site (then: sitefleet install DOMAIN)')
      .option('--platform <platform>', 'the platform it is served from')
      .option('--db-server <server>', 'database server')
      .option('--alias <domain>', 'an alias (repeat or comma-separate)', list)
      .option('--https', 'serve over https')
      .option('--disabled', 'add it disabled'),
  ).action(async (domain: string | undefined, o: Record<string, string | string[] | boolean | undefined>) => {
    if (o.file) return create('sites', readResourceFile(String(o.file)));
    if (!domain || !o.platform) throw new UsageError('site add needs DOMAIN and --platform (or --file)');
    await create(
      'sites',
      compact({
        domain,
        platform: o.platform,
        dbServer: o.dbServer,
        aliases: o.alias,
        https: o.https === true ? true : undefined,
        status: o.disabled === true ? 'disabled' : undefined,
      }),
    );
  });
  siteCmd
    .command('remove <domain>')
    .description('delete a site from its servers (with its database), then from the inventory')
    .option('--forget', 'remove the inventory record only; the servers are not touched')
    .option('--no-wait', 'return once the operation has started')
    .option('--poll-interval <ms>', 'how often to poll progress', int('--poll-interval'), 1000)
    .action(async (domain: string, o: WaitOpts & { forget?: boolean }) => {
      if (o.forget) {
        await client().request('DELETE', `/v1/sites/${seg(domain)}?forget=true`);
        return io.out(`forgot site ${domain}`);
      }
      await runOperation('DELETE', `/v1/sites/${seg(domain)}`, undefined, o);
    });

  // ---- operations as top-level verbs ----

  const siteOp = (verb: string, description: string) => {
    for (const parent of [program, siteCmd]) {
      operation(parent, verb, description, (d) => `/v1/sites/${seg(d)}/${verb}`, 'domain');
    }
  };
  deploy(program, 'deploy a platform on its server, pack or cluster');
  siteOp('install', 'install a site on every server of its platform');
  siteOp('enable', 'enable a site (EnableSite)');
  siteOp('disable', 'disable a site (DisableSite)');
  siteOp('backup', 'back up a site (BackupSite)');
  withWait(program.command('restore <domain>').description('restore a site from a backup (RestoreSite)'))
    .requiredOption('--backup <file>', 'backup file name')
    .action(async (domain: string, o: WaitOpts & { backup: string }) =>
      runOperation('POST', `/v1/sites/${seg(domain)}/restore`, { backup: o.backup }, o),
    );
  withWait(program.command('migrate <domain>').description('move a site to another platform (MigrateSite)'))
    .requiredOption('--to <platform>', 'the platform the site moves to')
    .action(async (domain: string, o: WaitOpts & { to: string }) =>
      runOperation('POST', `/v1/sites/${seg(domain)}/migrate`, { platform: o.to }, o),
    );
  operation(
    program,
    'setup-share',
    'set up the NFS share of a pack (SetupPackShare)',
    (n) => `/v1/packs/${seg(n)}/setup-share`,
  );
  withWait(
    program
      .command('verify <kind> <name>')
      .description('verify a server (VerifyServer) or every member of a pack or cluster (VerifyClusterNodes)'),
  ).action(async (kind: string, name: string, o: WaitOpts) => {
    if (!['server', 'pack', 'cluster'].includes(kind))
      throw new UsageError('verify KIND must be server, pack or cluster');
    await runOperation('POST', `/v1/${kind}s/${seg(name)}/verify`, {}, o);
  });
  withWait(
    program
      .command('resync <kind> <name>')
      .description('repair drift on every member of a pack or cluster (ResyncCluster)'),
  ).action(async (kind: string, name: string, o: WaitOpts) => {
    if (!['pack', 'cluster'].includes(kind)) throw new UsageError('resync KIND must be pack or cluster');
    await runOperation('POST', `/v1/${kind}s/${seg(name)}/resync`, {}, o);
  });
  withWait(
    program
      .command('delete <kind> <name>')
      .description('delete a site (DeleteSite) or a platform (DeletePlatform) from its servers and the inventory'),
  ).action(async (kind: string, name: string, o: WaitOpts) => {
    if (!['site', 'platform'].includes(kind)) throw new UsageError('delete KIND must be site or platform');
    await runOperation('POST', `/v1/${kind}s/${seg(name)}/delete`, {}, o);
  });

  // ---- operations ----

  const opCmd = program.command('operation').description('operations started through the API');
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
      const { operations } = await client().get<{ operations: OperationRecord[] }>(`/v1/operations${q ? `?${q}` : ''}`);
      if (globals().json) return print(operations);
      table(
        io,
        ['OPERATION', 'TYPE', 'STATUS', 'STARTED', 'RUN'],
        operations.map((r) => [r.id, r.type, r.status, r.startedAt, r.runId]),
      );
    });
  opCmd
    .command('show <id>')
    .description('status, progress, result or failure of an operation')
    .option('--run <runId>', 'a run of the operation (default: the latest)')
    .action(async (id: string, o: { run?: string }) =>
      print(await client().get<OperationView>(operationPath(id, o.run))),
    );
  opCmd
    .command('watch <id>')
    .description('follow an operation until it ends; exit code 1 unless it completes')
    .option('--run <runId>', 'a run of the operation (default: the latest)')
    .option('--poll-interval <ms>', 'how often to poll progress', int('--poll-interval'), 1000)
    .action(async (id: string, o: { run?: string; pollInterval: number }) => {
      const { ok } = await watchOperation(client(), id, o.run, { print: io.out, pollMs: o.pollInterval });
      if (!ok) throw new OperationFailed();
    });
  opCmd
    .command('cancel <id>')
    .description('request cancellation; the workflow undoes what it did')
    .action(async (id: string) => {
      await client().request('POST', `${operationPath(id)}/cancel`, {});
      io.out(`cancellation of ${id} requested`);
    });

  // ---- schedules ----

  const schedCmd = program.command('schedule').description('scheduled resync and verify of packs and clusters');
  schedCmd
    .command('add <action> <kind> <name>')
    .description('create or update: ACTION resync|verify, KIND pack|cluster')
    .requiredOption('--every <interval>', 'interval such as 15m, 6h, 1d')
    .option('--paused', 'create it paused')
    .option('--note <text>', 'a note shown with the schedule')
    .action(
      async (action: string, kind: string, name: string, o: { every: string; paused?: boolean; note?: string }) => {
        const { body, status } = await client().request<ScheduleView>(
          'POST',
          '/v1/schedules',
          compact({ action, target: { kind, name }, every: o.every, paused: o.paused === true, note: o.note }),
        );
        if (globals().json) return print(body);
        io.out(`${status === 201 ? 'created' : 'updated'} schedule ${body.scheduleId} every ${body.every ?? '?'}`);
      },
    );
  schedCmd
    .command('list')
    .description('list schedules')
    .action(async () => {
      const { schedules } = await client().get<{ schedules: ScheduleView[] }>('/v1/schedules');
      if (globals().json) return print(schedules);
      table(
        io,
        ['SCHEDULE', 'EVERY', 'STATE', 'NEXT'],
        schedules.map((s) => [
          s.scheduleId,
          s.every ?? '-',
          s.paused ? 'paused' : 'active',
          s.nextActionTimes[0] ?? '-',
        ]),
      );
    });
  const schedPath = (id: string) => `/v1/schedules/${id.split('/').map(encodeURIComponent).join('/')}`;
  schedCmd
    .command('show <id>')
    .description('show a schedule (id ACTION/KIND/NAME)')
    .action(async (id: string) => print(await client().get(schedPath(id))));
  schedCmd
    .command('set <id>')
    .description('change the interval of a schedule')
    .requiredOption('--every <interval>', 'interval such as 15m, 6h, 1d')
    .action(async (id: string, o: { every: string }) => {
      await client().request('PATCH', schedPath(id), { every: o.every });
      io.out(`schedule ${id} now every ${o.every}`);
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
        await client().request('PATCH', schedPath(id), compact({ paused, note: o.note }));
        io.out(`schedule ${id} ${paused ? 'paused' : 'unpaused'}`);
      });
  }
  schedCmd
    .command('remove <id>')
    .description('delete a schedule')
    .action(async (id: string) => {
      await client().request('DELETE', schedPath(id));
      io.out(`schedule ${id} removed`);
    });

  // ---- apply ----

  program
    .command('apply <file>')
    .description(
      'make the inventory and the servers match a YAML description (servers, packs, clusters, platforms, sites, schedules)',
    )
    .option('-y, --yes', 'do not ask for confirmation (needed without a terminal)')
    .option('--plan', 'print the plan and change nothing')
    .option('--no-operations', 'write the inventory only; start no operation')
    .option('--poll-interval <ms>', 'how often to poll progress', int('--poll-interval'), 1000)
    .action(async (file: string, o: { yes?: boolean; plan?: boolean; operations: boolean; pollInterval: number }) => {
      const description = readApplyFile(file);
      const api = client();
      const plan = await planApply(api, description);
      for (const line of formatPlan(plan)) io.out(line);
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

  return program;
}

class OperationFailed extends Error {}

/** Drops undefined members so that the API applies its defaults. */
function compact(o: Record<string, unknown>): Record<string, unknown> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined));
}

function table(io: CliIo, header: string[], rows: string[][]): void {
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
    io.err(`error: ${err instanceof Error ? err.message : String(err)}`);
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
