/** `sitefleet platform ...`: codebases deployed on a server, pack or cluster. */
import { Option } from 'commander';
import type { Platform, PlatformSource } from '../../domain/model';
import {
  addFromFile,
  type CliContext,
  compact,
  operation,
  type ListColumns,
  readResourceFile,
  removeWithOperation,
  resource,
  UsageError,
} from '../context';
import { seg } from '../api-client';
import { deploy } from '../transfer-flags';

const describeSource = (s: PlatformSource): string =>
  s.type === 'path' ? `path:${s.path}` : `${s.type}:${s.url}${s.type === 'git' && s.ref ? `#${s.ref}` : ''}`;

export const platformColumns: ListColumns<Platform> = {
  header: ['NAME', 'TARGET', 'PROFILE', 'SOURCE'],
  row: (p) => [p.name, `${p.target.kind}:${p.target.name}`, p.profile, describeSource(p.source)],
};

interface PlatformAddOpts {
  file?: string;
  target?: string;
  git?: string;
  ref?: string;
  tarball?: string;
  path?: string;
  profile?: string;
}

export function platformCommands(cli: CliContext): void {
  const platformCmd = resource(
    cli,
    'platform',
    'platforms',
    'platforms: codebases deployed on a server, pack or cluster',
    platformColumns,
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
  ).action(async (name: string | undefined, o: PlatformAddOpts) => {
    if (o.file) return cli.create('platforms', readResourceFile(o.file));
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
    await cli.create('platforms', { name, target: { kind, name: target }, source: sources[0], profile: o.profile });
  });
  removeWithOperation(
    cli,
    platformCmd,
    'platforms',
    'platform',
    'name',
    'delete a platform from its servers, then from the inventory (refused while sites exist)',
  );
  deploy(cli, platformCmd, 'deploy the platform on its target');
  operation(
    cli,
    platformCmd,
    'rollback',
    "put every member of the platform's cluster back on its previous release (RollbackPlatform)",
    (n) => `/v1/platforms/${seg(n)}/rollback`,
  );
}
