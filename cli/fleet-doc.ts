/**
 * docs/fleet-file.md, generated from the zod schemas of `sitefleet apply` (cli/apply.ts) so that it cannot drift:
 * every field's type, rule, default and whether it is required come from the schemas; the sentence that says what
 * a field is for comes from FIELD_MEANINGS, and test/cli/fleet-doc.test.ts fails when a field has none or a
 * sentence names a field that no longer exists. `npm run docs:fleet-file` rewrites the file;
 * `sitefleet apply --example` prints the example.
 */
import type { z } from 'zod';
import {
  absolutePath,
  domainName,
  gitRef,
  hostAddress,
  ipv4Subnet,
  ownedDirectory,
  posixUser,
  resourceName,
  sourceUrl,
  sshFingerprint,
  tcpPort,
} from '../domain/fields';
import { applyFileSchema } from './apply';

/** A complete description: WordPress on a 3-node cluster and on a pack of one master and two slaves. */
export const FLEET_EXAMPLE = `# A sitefleet description: \`sitefleet apply fleet.yaml\` (every field: docs/fleet-file.md).
# WordPress on a cluster of three web servers and on a pack (one master, two slaves), one database server.
# The hosts are the README quick-start's test hosts (bed on 10.77.0.0/24); put your own names and addresses.
servers:
  # No ssh.keyPath: the worker's key (SITEFLEET_SSH_KEY); a key of its own must lie in SITEFLEET_SSH_KEY_DIRS.
  # No ssh.hostKey: the API reads the key each server offers and pins it (\`sitefleet server repin\` changes it).
  - name: h1
    host: 10.77.0.11
    ssh: { user: root, port: 22 }
    http: { type: nginx }
  - { name: h2, host: 10.77.0.12, ssh: {}, http: { type: nginx } }
  - { name: h3, host: 10.77.0.13, ssh: {}, http: { type: nginx } }
  - { name: h4, host: 10.77.0.14, ssh: {}, http: { type: nginx }, nfs: { flavour: ganesha } }
  - { name: h5, host: 10.77.0.15, ssh: {}, http: { type: nginx } }
  - { name: h6, host: 10.77.0.16, ssh: {}, http: { type: nginx } }
  - { name: h7, host: 10.77.0.17, ssh: {}, db: { type: mariadb } }

clusters:
  - name: web
    members: [h1, h2, h3]
    files: none

packs:
  - name: shop
    master: h4
    slaves: [h5, h6]
    share:
      server: h4                     # exports /var/aegir/platforms to the slaves
      exportPath: /var/aegir/platforms
      clients: 10.77.0.0/24          # the slaves' network (no host bits); the export names each slave
      clientFlavour: sshfs           # or kernel, where the slaves can mount NFS

platforms:
  - name: wp-web
    target: { kind: cluster, name: web }
    source: { type: path, path: /usr/share/wordpress }
    profile: wordpress
  - name: wp-shop
    target: { kind: pack, name: shop }
    source: { type: path, path: /usr/share/wordpress }
    profile: wordpress

sites:
  - { domain: blog.example.com, platform: wp-web, dbServer: h7 }
  - { domain: shop.example.com, platform: wp-shop, dbServer: h7 }

schedules:
  - { action: verify, target: { kind: cluster, name: web }, every: 1h, note: hourly check }
`;

/** What each field is for, by its path in the file. The test checks that this list and the schemas agree. */
export const FIELD_MEANINGS: Record<string, string> = {
  'servers[].name': 'The name other resources use for this server.',
  'servers[].host': 'How the controller reaches the server over ssh.',
  'servers[].ssh': 'How sitefleet logs in.',
  'servers[].ssh.user': 'The ssh user (needs root or passwordless sudo).',
  'servers[].ssh.port': 'The ssh port.',
  'servers[].ssh.keyPath':
    "The private key on the controller; it must lie in one of SITEFLEET_SSH_KEY_DIRS (default ~/.ssh and $SITEFLEET_DATA_DIR/ssh-keys). Left out: the worker's key (SITEFLEET_SSH_KEY).",
  'servers[].ssh.hostKey':
    'The pinned host key; every connection refuses another. Left out: the API reads the key the server offers and pins it (a server already known keeps its pin). Change it with `sitefleet server repin NAME`.',
  'servers[].address': "The address web nodes use for this server's services (database, NFS). Default: host.",
  'servers[].http': 'The web server, when this server serves sites.',
  'servers[].http.type': 'nginx or apache.',
  'servers[].http.port': 'The http port of the vhosts.',
  'servers[].http.https': 'https vhosts: their port and certificate.',
  'servers[].http.https.port': 'The https port.',
  'servers[].http.https.certificate': 'The certificate file on the server.',
  'servers[].http.https.key': "The certificate's key file on the server.",
  'servers[].http.phpFpmSocket': 'The php-fpm socket the vhosts pass PHP to.',
  'servers[].db': 'The database server, when this server holds site databases.',
  'servers[].db.type': 'mariadb or mysql.',
  'servers[].db.port': 'The database port.',
  'servers[].nfs': 'The NFS server, when this server exports a pack share.',
  'servers[].nfs.flavour': 'kernel (/etc/exports) or ganesha (nfs-ganesha).',
  'servers[].lb': 'The load balancer, when this server fronts a cluster (cluster set-lb; sitefleet owns one block of its config).',
  'servers[].lb.type': 'haproxy.',
  'servers[].lb.port': "The port the cluster's frontend listens on.",
  'servers[].lb.configFile': "haproxy's main config file, which gets sitefleet's managed block.",
  'servers[].aegirRoot': "Aegir's layout root: platforms, sites and backups live under it.",
  'servers[].aegirUser': 'The user that owns platforms and sites.',
  'packs[].name': 'The pack name.',
  'packs[].master': 'The server that holds the platforms.',
  'packs[].slaves': "The servers that serve the master's platforms from the share.",
  'packs[].share': 'How the slaves read the platforms.',
  'packs[].share.server': 'The server that exports the platforms (usually the master).',
  'packs[].share.exportPath': 'The exported directory.',
  'packs[].share.clients': 'The network the slaves are on, such as 10.0.0.0/24: the export names each slave (no other host may mount), and a slave outside it is refused.',
  'packs[].share.clientFlavour': 'kernel NFS, or sshfs where the slaves have no NFS client.',
  'packs[].share.exportToAnyone': 'true allows clients 0.0.0.0/0 (anyone who reaches the server may mount).',
  'packs[].transfer': 'How platform code reaches the master (see transfer below).',
  'clusters[].name': 'The cluster name.',
  'clusters[].members': 'The web servers that each hold a copy of every platform and site.',
  'clusters[].files': 'How uploaded files stay the same on every member.',
  'clusters[].loadBalancer': 'A server that balances requests across the members.',
  'clusters[].transfer': 'How platform code reaches the members (see transfer below).',
  'platforms[].name': 'The platform name.',
  'platforms[].target': 'Where the platform lives.',
  'platforms[].target.kind': 'server, pack or cluster.',
  'platforms[].target.name': 'The name of that server, pack or cluster.',
  'platforms[].source': 'Where the platform code comes from.',
  'platforms[].source.type': 'path, git or tarball.',
  'platforms[].source.path': 'A directory on the controller (type path).',
  'platforms[].source.url': 'The git repository or tarball URL (type git or tarball).',
  'platforms[].source.ref': 'The branch or tag to deploy (type git).',
  'platforms[].profile': 'What the code is: wordpress, drupal, php or static.',
  'sites[].domain': "The site's domain; an internationalised name in its punycode form (xn--...).",
  'sites[].aliases': 'More domains the site answers to.',
  'sites[].platform': 'The platform the site runs on.',
  'sites[].dbServer': "The server that holds the site's database (not for static sites).",
  'sites[].https': 'Serve the site over https too (the web servers need http.https).',
  'sites[].status': 'enabled, or disabled (the vhost answers 503).',
  'schedules[].action': 'resync or verify.',
  'schedules[].target': 'The pack or cluster the schedule acts on.',
  'schedules[].target.kind': 'pack or cluster.',
  'schedules[].target.name': 'Its name.',
  'schedules[].every': 'How often, such as 15m, 6h or 1d (at least 1m).',
  'schedules[].paused': 'Created paused.',
  'schedules[].note': 'A note shown with the schedule.',
  'transfer.mode': 'auto relays only where predicted clearly faster (needs uplinkMbit); rsync or relay force one.',
  'transfer.uplinkMbit': "The controller's upload bandwidth in Mbit/s; without it auto always uses parallel rsync.",
  'transfer.memberLinkMbit': "Each member's own link in Mbit/s. Default: uplinkMbit.",
  'transfer.minMembers': 'Fewest code receivers for auto to relay. Default 3.',
  'transfer.minBytes': 'Fewest bytes rsync would send in all for auto to relay. Default 16777216 (16 MiB).',
  'transfer.compress': 'Compress the relay stream with zstd where every host has it. Default true.',
};

/** The rule of each shared field type (domain/fields.ts), by identity. */
const RULES = new Map<z.ZodType, string>([
  [resourceName, 'name: 1-63 of a-z, 0-9, - and _, starting with a letter or digit'],
  [domainName, 'domain name: lower case, two labels or more, valid IDNA (punycode for Unicode names)'],
  [hostAddress, 'IPv4 address (dotted quad) or DNS name; a name may not end in a number'],
  [ipv4Subnet, 'IPv4 subnet in CIDR notation, its network address (no host bits set)'],
  [absolutePath, 'absolute path of letters, digits and . _ @ + - (no . or .. segments)'],
  [ownedDirectory, 'absolute path, not / or a system directory (/etc, /var, /usr ...) or inside /etc, /usr, /proc ...'],
  [posixUser, 'POSIX user name'],
  [tcpPort, 'TCP port 1-65535'],
  [sshFingerprint, 'OpenSSH SHA256 fingerprint: SHA256: and 43 base64 characters'],
  [sourceUrl, 'http(s), git or ssh URL; host and user may not start with -'],
  [gitRef, 'git ref name'],
]);

export interface FieldRow {
  path: string;
  type: string;
  required: boolean;
  default?: string;
}

interface Def {
  type: string;
  innerType?: z.ZodType;
  defaultValue?: unknown;
  shape?: Record<string, z.ZodType>;
  element?: z.ZodType;
  options?: z.ZodType[];
  entries?: Record<string, string>;
  values?: unknown[];
  checks?: { _zod: { def: { check: string; value?: number; inclusive?: boolean } } }[];
}
const defOf = (schema: z.ZodType) => (schema as unknown as { _zod: { def: Def } })._zod.def;

function numberRule(def: Def, what: string): string {
  const parts = [what];
  for (const c of def.checks ?? []) {
    const d = c._zod.def;
    if (d.check === 'greater_than') parts.push(`${d.inclusive ? '≥' : '>'} ${d.value}`);
    if (d.check === 'less_than') parts.push(`${d.inclusive ? '≤' : '<'} ${d.value}`);
  }
  return parts.join(' ');
}

/** The rows of `schema` under `path`: one per field, sections included. */
function walk(schema: z.ZodType, path: string, required: boolean, rows: FieldRow[], dflt?: unknown): void {
  let s = schema;
  let def = defOf(s);
  while (def.type === 'optional' || def.type === 'default') {
    if (def.type === 'default') dflt = def.defaultValue;
    required = false;
    s = def.innerType!;
    def = defOf(s);
  }
  const row = (type: string) =>
    rows.push({ path, type, required, ...(dflt !== undefined ? { default: JSON.stringify(dflt) } : {}) });
  const rule = RULES.get(s);
  if (rule) return void row(rule);
  switch (def.type) {
    case 'object': {
      if (path && !path.endsWith('[]')) row('section');
      for (const [key, field] of Object.entries(def.shape ?? {})) {
        walk(field, path ? `${path}.${key}` : key, true, rows);
      }
      return;
    }
    case 'array': {
      const element = def.element!;
      const elementRule = RULES.get(element);
      if (defOf(element).type === 'object' || defOf(element).type === 'union') {
        return walk(element, `${path}[]`, required, rows);
      }
      return void row(`list of ${elementRule ?? defOf(element).type}`);
    }
    case 'union': {
      // A discriminated union: each option's fields, the discriminator once.
      const seen = new Set(rows.map((r) => r.path));
      row('section');
      const sub: FieldRow[] = [];
      for (const option of def.options ?? []) walk(option, path, required, sub);
      const types = new Map<string, FieldRow>();
      for (const r of sub) {
        if (r.path === path || seen.has(r.path)) continue;
        const prior = types.get(r.path);
        if (!prior) types.set(r.path, { ...r });
        else if (!prior.type.split(' | ').includes(r.type)) prior.type = `${prior.type} | ${r.type}`;
      }
      rows.push(...types.values());
      return;
    }
    case 'enum':
      return void row(`one of ${Object.values(def.entries ?? {}).join(', ')}`);
    case 'literal':
      return void row((def.values ?? []).map((v) => String(v)).join(', '));
    case 'boolean':
      return void row('true or false');
    case 'number':
      return void row(numberRule(def, 'number'));
    case 'string':
      return void row('text');
    default:
      return void row(def.type);
  }
}

/** Every field of every resource of a fleet file, with its type or rule, default and whether it is required. */
export function fleetFieldRows(): FieldRow[] {
  const rows: FieldRow[] = [];
  walk(applyFileSchema, '', true, rows);
  // transfer appears under packs and clusters: listed once, in its own table.
  const transfer = rows.filter((r) => /^(packs|clusters)\[\]\.transfer\./.test(r.path));
  const once = new Map<string, FieldRow>();
  for (const r of transfer)
    once.set(r.path.replace(/^(packs|clusters)\[\]\./, ''), {
      ...r,
      path: r.path.replace(/^(packs|clusters)\[\]\./, ''),
    });
  return [...rows.filter((r) => !transfer.includes(r) && !/^[a-z]+$/.test(r.path)), ...once.values()];
}

const SECTIONS: [string, string][] = [
  ['servers', 'Servers: the machines sitefleet logs in to.'],
  ['packs', 'Packs: one master holding the platforms, slaves reading them over NFS or sshfs.'],
  ['clusters', 'Clusters: members that each hold a copy of every platform and site.'],
  ['platforms', 'Platforms: a codebase on a server, pack or cluster.'],
  ['sites', 'Sites: a domain served from a platform.'],
  ['schedules', 'Schedules: recurring resync or verify of a pack or cluster.'],
  ['transfer', 'transfer (in packs and clusters, optional): how platform code is sent.'],
];

const cell = (text: string) => text.replace(/\|/g, '\\|');

/** The text of docs/fleet-file.md. */
export function fleetFileDoc(): string {
  const rows = fleetFieldRows();
  const out: string[] = [
    '# The fleet file: every field',
    '',
    '<!-- Generated by `npm run docs:fleet-file` from the zod schemas (cli/fleet-doc.ts); do not edit by hand. -->',
    '',
    '`sitefleet apply FILE` reads a YAML (or JSON) file that describes servers, packs, clusters, platforms, sites',
    'and schedules, shows what would change (field by field, host-key changes marked), and after confirmation',
    'writes the inventory and runs the operations that bring the servers in line. `sitefleet apply --example`',
    'prints the example at the end of this page. Every list is optional; a resource is matched with the',
    'inventory by its name (sites: by domain). The same fields are what the API takes (GET /v1/openapi.json).',
    '',
    'A test-host bed writes `inventory.json` (`{ "servers": [...] }`, every host with its key path and pinned',
    'host key): it is a valid fleet file by itself, and its `servers` list can be pasted into a larger one.',
    '',
  ];
  for (const [prefix, title] of SECTIONS) {
    out.push(`## ${title}`, '', '| field | type / rule | required | default | meaning |', '|---|---|---|---|---|');
    for (const r of rows.filter(
      (x) => x.path === prefix || x.path.startsWith(`${prefix}[]`) || x.path.startsWith(`${prefix}.`),
    )) {
      const field = r.path.replace(/^[a-z]+\[\]\./, '');
      out.push(
        `| \`${field}\` | ${cell(r.type)} | ${r.required ? 'yes' : 'no'} | ${r.default !== undefined ? `\`${cell(r.default)}\`` : ''} | ${cell(FIELD_MEANINGS[r.path] ?? '')} |`,
      );
    }
    out.push('');
  }
  out.push('## Example', '', '```yaml', FLEET_EXAMPLE.trimEnd(), '```', '');
  return out.join('\n');
}
