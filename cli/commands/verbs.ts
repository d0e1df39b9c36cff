/**
 * Operations as top-level verbs: `sitefleet deploy|rollback|install|enable|disable|backup|restore|migrate|setup-share|
 * teardown-share|verify|resync|delete ...` (the site verbs are also under `sitefleet site`).
 */
import type { Command } from 'commander';
import { seg } from '../api-client';
import { type CliContext, operation, UsageError, type WaitOpts, withWait } from '../context';
import { deploy } from '../transfer-flags';
import { teardownShareCommand } from './pack';

export function verbCommands(cli: CliContext, siteCmd: Command): void {
  const { program } = cli;
  const siteOp = (verb: string, description: string) => {
    for (const parent of [program, siteCmd]) {
      operation(cli, parent, verb, description, (d) => `/v1/sites/${seg(d)}/${verb}`, 'domain');
    }
  };
  deploy(cli, program, 'deploy a platform on its server, pack or cluster');
  operation(
    cli,
    program,
    'rollback',
    "put every member of a platform's cluster back on its previous release (RollbackPlatform)",
    (n) => `/v1/platforms/${seg(n)}/rollback`,
    'platform',
  );
  siteOp('install', 'install a site on every server of its platform');
  siteOp('enable', 'enable a site (EnableSite)');
  siteOp('disable', 'disable a site (DisableSite)');
  siteOp('backup', 'back up a site (BackupSite)');
  withWait(program.command('restore <domain>').description('restore a site from a backup (RestoreSite)'))
    .requiredOption('--backup <file>', 'backup file name')
    .action(async (domain: string, o: WaitOpts & { backup: string }) =>
      cli.runOperation('POST', `/v1/sites/${seg(domain)}/restore`, { backup: o.backup }, o),
    );
  withWait(program.command('migrate <domain>').description('move a site to another platform (MigrateSite)'))
    .requiredOption('--to <platform>', 'the platform the site moves to')
    .action(async (domain: string, o: WaitOpts & { to: string }) =>
      cli.runOperation('POST', `/v1/sites/${seg(domain)}/migrate`, { platform: o.to }, o),
    );
  operation(
    cli,
    program,
    'setup-share',
    'set up the NFS share of a pack (SetupPackShare)',
    (n) => `/v1/packs/${seg(n)}/setup-share`,
  );
  teardownShareCommand(cli, program);
  withWait(
    program
      .command('verify <kind> <name>')
      .description('verify a server (VerifyServer) or every member of a pack or cluster (VerifyClusterNodes)'),
  ).action(async (kind: string, name: string, o: WaitOpts) => {
    if (!['server', 'pack', 'cluster'].includes(kind))
      throw new UsageError('verify KIND must be server, pack or cluster');
    await cli.runOperation('POST', `/v1/${kind}s/${seg(name)}/verify`, {}, o);
  });
  withWait(
    program
      .command('resync <kind> <name>')
      .description('repair drift on every member of a pack or cluster (ResyncCluster)'),
  ).action(async (kind: string, name: string, o: WaitOpts) => {
    if (!['pack', 'cluster'].includes(kind)) throw new UsageError('resync KIND must be pack or cluster');
    await cli.runOperation('POST', `/v1/${kind}s/${seg(name)}/resync`, {}, o);
  });
  withWait(
    program
      .command('delete <kind> <name>')
      .description('delete a site (DeleteSite) or a platform (DeletePlatform) from its servers and the inventory'),
  ).action(async (kind: string, name: string, o: WaitOpts) => {
    if (!['site', 'platform'].includes(kind)) throw new UsageError('delete KIND must be site or platform');
    await cli.runOperation('POST', `/v1/${kind}s/${seg(name)}/delete`, {}, o);
  });
}
