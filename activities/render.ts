/**
 * Pure rendering of every config file sitefleet writes, from the nunjucks templates in templates/. Autoescaping is
 * off (these are config files, not HTML), so every value is validated by the domain's field rules before it reaches
 * a template, and an undefined value is an error rather than an empty string.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import nunjucks from 'nunjucks';
import { z } from 'zod';
import {
  absolutePath,
  domainName,
  hostAddress,
  ipv4Address,
  ipv4Subnet,
  posixUser,
  resourceName,
  shareOwnerName,
  tcpPort,
} from '../domain/fields';
import { platformSchema, serverSchema, siteSchema, type Platform, type Server, type Site } from '../domain/model';
import { platformRoot, siteDir, vhostDir } from '../domain/paths';
import { parseInput } from './support/activity-input';
import { badInput } from '../common/failures';

function templatesDir(): string {
  // From source (tsx) the templates sit next to activities/; from a build (dist/js/activities) further up.
  for (const up of [['..'], ['..', '..'], ['..', '..', '..']]) {
    const dir = join(__dirname, ...up, 'templates');
    if (existsSync(join(dir, 'nginx-vhost.conf.njk'))) return dir;
  }
  throw new Error(`templates directory not found near ${__dirname}`);
}

let environment: nunjucks.Environment | undefined;

function templates(): nunjucks.Environment {
  if (environment) return environment;
  const env = new nunjucks.Environment(new nunjucks.FileSystemLoader(templatesDir(), { noCache: false }), {
    autoescape: false,
    throwOnUndefined: true,
  });
  env.addFilter('php', phpStringLiteral);
  environment = env;
  return env;
}

/** A PHP single-quoted string literal holding exactly `value`. */
export function phpStringLiteral(value: unknown): string {
  if (value === undefined || value === null) throw new Error('php filter: value is undefined');
  return `'${String(value).replace(/\\/g, '\\\\').replace(/'/g, "\\'")}'`;
}

function render(template: string, context: object): string {
  return templates().render(template, context);
}

/** The address an https vhost listens on: the server's IPv4 address (Aegir reserves one per server), else any. */
function httpsListenAddress(server: Server): string {
  const address = server.address ?? server.host;
  return ipv4Address.safeParse(address).success ? address : '*';
}

export interface VhostInput {
  server: Server;
  site: Site;
  platform: Platform;
}

/** The vhost of `site` on `server` (nginx or apache, by the server's http service), with that server's values. */
export function renderVhost(input: VhostInput): string {
  const server = parseInput(serverSchema, input.server, 'server');
  const site = parseInput(siteSchema, input.site, 'site');
  const platform = parseInput(platformSchema, input.platform, 'platform');
  const http = server.http;
  if (!http) throw badInput(`server ${server.name} has no http service; it cannot serve site ${site.domain}`);
  if (site.https && !http.https) {
    throw badInput(`site ${site.domain} wants https but server ${server.name} has no https port and certificate`);
  }
  return render(`${http.type}-vhost.conf.njk`, {
    serverName: server.name,
    domain: site.domain,
    aliases: site.aliases,
    docroot: platformRoot(server, platform.name),
    profile: platform.profile,
    enabled: site.status === 'enabled',
    phpFpmSocket: http.phpFpmSocket,
    http: { port: http.port },
    https:
      site.https && http.https
        ? {
            address: httpsListenAddress(server),
            port: http.https.port,
            certificate: http.https.certificate,
            key: http.https.key,
          }
        : null,
  });
}

/** The web server's main include of this server's vhost directory (Aegir's vhost.d). */
export function renderServerInclude(serverInput: Server): string {
  const server = parseInput(serverSchema, serverInput, 'server');
  if (!server.http) throw badInput(`server ${server.name} has no http service`);
  return render(`${server.http.type}-server-include.conf.njk`, {
    serverName: server.name,
    vhostDir: vhostDir(server, server.http.type),
  });
}

/** Who may mount: the pack's slaves by address (what SetupPackShare passes), or one subnet. */
const exportClients = z.array(z.union([ipv4Subnet, hostAddress])).min(1, 'must name at least one client');
const exportSchema = z.object({ exportPath: absolutePath, clients: exportClients }).strict();

/**
 * The /etc/exports line of a pack's share (kernel NFS server): each client with `rw,sync,no_subtree_check` (root
 * squashed, the default: a slave's root is nobody on the master).
 */
export function renderExportsLine(input: z.input<typeof exportSchema>): string {
  return render('nfs-exports.njk', parseInput(exportSchema, input, 'export'));
}

const ganeshaSchema = exportSchema
  .extend({ pack: shareOwnerName, exportId: z.number().int().min(1).max(65535) })
  .strict();

/** The nfs-ganesha EXPORT block of a pack's share. */
export function renderGaneshaExport(input: z.input<typeof ganeshaSchema>): string {
  return render('ganesha-export.conf.njk', parseInput(ganeshaSchema, input, 'ganesha export'));
}

const fstabNfsSchema = z
  .object({ shareHost: hostAddress, exportPath: absolutePath, mountPoint: absolutePath })
  .strict();

/** The /etc/fstab line of a kernel NFS mount of a pack's share. */
export function renderFstabNfs(input: z.input<typeof fstabNfsSchema>): string {
  return render('fstab-nfs.njk', parseInput(fstabNfsSchema, input, 'fstab nfs line'));
}

const fstabSshfsSchema = fstabNfsSchema
  .extend({
    remoteUser: posixUser,
    sshPort: tcpPort,
    identityFile: absolutePath,
    knownHostsFile: absolutePath,
    /**
     * Hand symlink targets to the slave as they are, like NFS does (sshfs >= 3.7.2 refuses links that point
     * outside the mount unless told `no_contain_symlinks`; WordPress's .htaccess is such a link).
     */
    symlinksVerbatim: z.boolean().default(true),
    /**
     * FUSE's `umask`: the permission bits every file shows on the client (a cluster's uploads: 0002, so that
     * php-fpm's group may rewrite what another member wrote; the server writes as the share's user anyway).
     */
    umask: z
      .string()
      .regex(/^0[0-7]{3}$/, 'must be an octal umask such as 0002')
      .optional(),
  })
  .strict();

/** The /etc/fstab line of an sshfs (FUSE) mount of a pack's share. */
export function renderFstabSshfs(input: z.input<typeof fstabSshfsSchema>): string {
  return render('fstab-sshfs.njk', parseInput(fstabSshfsSchema, input, 'fstab sshfs line'));
}

const haproxySchema = z
  .object({
    cluster: resourceName,
    members: z.array(serverSchema).min(1),
    pinToOne: z.boolean(),
    checkHost: domainName,
    checkPath: z.string().regex(/^\/[A-Za-z0-9._~/-]*$/, 'must be a URL path such as /'),
  })
  .strict();

/** The haproxy backend of a cluster: every member with a health check; pin-to-one makes all but the first backups. */
export function renderHaproxyBackend(input: z.input<typeof haproxySchema>): string {
  const v = parseInput(haproxySchema, input, 'haproxy backend');
  const members = v.members.map((m) => {
    if (!m.http) throw badInput(`cluster ${v.cluster}: member ${m.name} has no http service`);
    return { name: m.name, address: m.address ?? m.host, port: m.http.port };
  });
  return render('haproxy-backend.cfg.njk', { ...v, members });
}

const lbSiteSchema = z
  .object({
    domain: domainName,
    aliases: z.array(domainName),
    checkPath: z.string().regex(/^\/[A-Za-z0-9._~/?=&-]*$/, 'must be a URL path such as /'),
    checkStatus: z.array(z.number().int().min(100).max(599)).min(1),
  })
  .strict();

const haproxyClusterSchema = z
  .object({
    cluster: resourceName,
    port: tcpPort,
    socket: absolutePath,
    members: z.array(serverSchema),
    sites: z.array(lbSiteSchema),
  })
  .strict();

/** The haproxy backend name of a site of a cluster (haproxy names allow letters, digits, '.', '-' and '_'). */
export const lbBackendName = (cluster: string, domain: string): string => `sitefleet_${cluster}_${domain}`;

/**
 * sitefleet's block of a load balancer's haproxy config for one cluster: a frontend on the LB's port that routes by
 * Host to one backend per enabled site, each backend listing every member with a health check of that site (its
 * health script for WordPress), and an admin socket for draining members.
 */
export function renderHaproxyCluster(input: z.input<typeof haproxyClusterSchema>): string {
  const v = parseInput(haproxyClusterSchema, input, 'haproxy cluster block');
  const members = v.members.map((m) => {
    if (!m.http) throw badInput(`cluster ${v.cluster}: member ${m.name} has no http service`);
    return { name: m.name, address: m.address ?? m.host, port: m.http.port };
  });
  const sites = v.sites.map((s) => ({
    ...s,
    backend: lbBackendName(v.cluster, s.domain),
    hosts: [s.domain, ...s.aliases],
  }));
  return render('haproxy-cluster.cfg.njk', { ...v, members, sites });
}

/** Database credentials as written into a site's settings file (derived on the worker, never in history). */
export interface SiteDatabaseCredentials {
  name: string;
  user: string;
  password: string;
  host: string;
  port: number;
}

const credentialsSchema = z
  .object({
    name: z.string().regex(/^[a-z0-9_]{1,64}$/, 'must be a database name of a-z, 0-9 and _'),
    user: z.string().regex(/^[a-z0-9_]{1,32}$/, 'must be a database user of a-z, 0-9 and _'),
    password: z.string().regex(/^[A-Za-z0-9_-]{16,128}$/, 'must be a derived password (base64url)'),
    host: hostAddress,
    port: tcpPort,
  })
  .strict();

const saltsSchema = z.array(
  z.object({ name: z.string().regex(/^[A-Z_]{1,32}$/), value: z.string().regex(/^[A-Za-z0-9_-]{16,128}$/) }).strict(),
);

export interface SiteSettingsInput {
  server: Server;
  site: Site;
  platform: Platform;
  db: SiteDatabaseCredentials;
  /** Secret salts (WordPress keys, Drupal hash salt), derived on the worker like the password. */
  salts: { name: string; value: string }[];
}

/** Where a site's settings file lives, by the platform's profile; null for static sites. */
export function siteSettingsFileName(profile: Platform['profile']): string | null {
  switch (profile) {
    case 'drupal':
      return 'settings.php';
    case 'wordpress':
      return 'wp-config.php';
    case 'php':
      return 'settings.php';
    case 'static':
      return null;
  }
}

/** The settings file of a site (contains the database password: render on the worker, never return it). */
export function renderSiteSettings(input: SiteSettingsInput): string {
  const server = parseInput(serverSchema, input.server, 'server');
  const site = parseInput(siteSchema, input.site, 'site');
  const platform = parseInput(platformSchema, input.platform, 'platform');
  const db = parseInput(credentialsSchema, input.db, 'database credentials');
  const salts = parseInput(saltsSchema, input.salts, 'salts');
  const dir = siteDir(server, platform.name, site.domain);
  const context = {
    domain: site.domain,
    platform: platform.name,
    db,
    salts,
    hashSalt: salts[0]?.value ?? null,
    publicFilesPath: `sites/${site.domain}/files`,
    privateFilesPath: `${dir}/private`,
  };
  switch (platform.profile) {
    case 'drupal':
      if (!context.hashSalt) throw badInput(`site ${site.domain}: a Drupal site needs a hash salt`);
      return render('drupal-settings.php.njk', context);
    case 'wordpress':
      return render('wordpress-site-config.php.njk', context);
    case 'php':
      return render('php-site-settings.php.njk', context);
    case 'static':
      throw badInput(`site ${site.domain}: a static platform has no settings file`);
  }
}

/** The platform-level health script that reads a site's title from its database without booting WordPress. */
export function renderWordpressHealth(platformInput: Platform): string {
  const platform = parseInput(platformSchema, platformInput, 'platform');
  return render('wordpress-health.php.njk', { platform: platform.name });
}

/** The platform-level wp-config.php that picks a site's config by HTTP host. */
export function renderWordpressDispatcher(platformInput: Platform): string {
  const platform = parseInput(platformSchema, platformInput, 'platform');
  return render('wordpress-dispatcher.php.njk', { platform: platform.name });
}
