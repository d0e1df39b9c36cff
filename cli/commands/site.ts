/** `sitefleet site ...`: domains served from a platform. */
import type { Command } from 'commander';
import { displayDomain } from '../../domain/fields';
import type { Site } from '../../domain/model';
import {
  addFromFile,
  type CliContext,
  compact,
  list,
  type ListColumns,
  readResourceFile,
  removeWithOperation,
  resource,
  UsageError,
} from '../context';

export const siteColumns: ListColumns<Site> = {
  header: ['DOMAIN', 'PLATFORM', 'DB', 'SCHEME', 'STATUS', 'ALIASES'],
  // An internationalised domain shows its Unicode form beside the punycode: bücher.example (xn--bcher-kva.example).
  row: (s) => [
    displayDomain(s.domain),
    s.platform,
    s.dbServer ?? '-',
    s.https ? 'https' : 'http',
    s.status,
    s.aliases.map(displayDomain).join(','),
  ],
};

interface SiteAddOpts {
  file?: string;
  platform?: string;
  dbServer?: string;
  alias?: string[];
  https?: boolean;
  disabled?: boolean;
}

/** @returns the `site` command, which also gets the site operations (commands/verbs.ts). */
export function siteCommands(cli: CliContext): Command {
  const siteCmd = resource(cli, 'site', 'sites', 'sites: domains served from a platform', siteColumns);
  addFromFile(
    siteCmd
      .command('add [domain]')
      .description('add a site (then: sitefleet install DOMAIN)')
      .option('--platform <platform>', 'the platform it is served from')
      .option('--db-server <server>', 'database server')
      .option('--alias <domain>', 'an alias (repeat or comma-separate)', list)
      .option('--https', 'serve over https')
      .option('--disabled', 'add it disabled'),
  ).action(async (domain: string | undefined, o: SiteAddOpts) => {
    if (o.file) return cli.create('sites', readResourceFile(o.file));
    if (!domain || !o.platform) throw new UsageError('site add needs DOMAIN and --platform (or --file)');
    await cli.create(
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
  removeWithOperation(
    cli,
    siteCmd,
    'sites',
    'site',
    'domain',
    'delete a site from its servers (with its database), then from the inventory',
  );
  return siteCmd;
}
