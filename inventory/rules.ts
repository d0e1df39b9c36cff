/**
 * Rules between resources, checked before every write whatever the backend: references exist and offer the
 * service their role needs, names do not clash, lists hold no duplicates.
 */
import type { Server } from '../domain/model';
import type { FieldProblem, MissingReference, ResourceKind, Resources } from './store';

/** What a rule check may read: a consistent view of the inventory inside the writing transaction. */
export interface InventoryReader {
  get<K extends ResourceKind>(kind: K, key: string): Resources[K] | undefined;
  /** The domain of the site that serves `host` as its domain or one of its aliases. */
  siteServing(host: string): string | undefined;
}

export interface RuleProblems {
  missing: MissingReference[];
  invalid: FieldProblem[];
}

type Service = 'http' | 'db' | 'nfs' | 'lb';

function needServer(
  read: InventoryReader,
  problems: RuleProblems,
  field: string,
  name: string,
  service: Service | undefined,
  why: string,
): Server | undefined {
  const server = read.get('server', name);
  if (!server) {
    problems.missing.push({ field, kind: 'server', name });
    return undefined;
  }
  if (service && !server[service]) {
    problems.invalid.push({ field, rule: `server "${name}" has no ${service} service, which ${why} needs` });
  }
  return server;
}

function noDuplicates(problems: RuleProblems, field: string, names: string[]): void {
  const seen = new Set<string>();
  names.forEach((name, i) => {
    if (seen.has(name)) problems.invalid.push({ field: `${field}.${i}`, rule: `must not repeat "${name}"` });
    seen.add(name);
  });
}

/** Checks a validated resource against the rest of the inventory. */
export function checkResource<K extends ResourceKind>(
  kind: K,
  value: Resources[K],
  read: InventoryReader,
): RuleProblems {
  const p: RuleProblems = { missing: [], invalid: [] };
  switch (kind) {
    case 'server':
      break;
    case 'pack': {
      const pack = value as Resources['pack'];
      if (read.get('cluster', pack.name)) {
        p.invalid.push({ field: 'name', rule: `must differ from every cluster name ("${pack.name}" is a cluster)` });
      }
      needServer(read, p, 'master', pack.master, 'http', 'a pack master');
      pack.slaves.forEach((s, i) => needServer(read, p, `slaves.${i}`, s, 'http', 'a pack slave'));
      if (pack.slaves.includes(pack.master)) {
        p.invalid.push({ field: 'slaves', rule: `must not include the master "${pack.master}"` });
      }
      noDuplicates(p, 'slaves', pack.slaves);
      // Kernel clients mount an NFS export, so the share server must run an NFS server; sshfs needs only ssh.
      const shareService = pack.share.clientFlavour === 'kernel' ? 'nfs' : undefined;
      needServer(read, p, 'share.server', pack.share.server, shareService, 'a pack share mounted by kernel NFS');
      break;
    }
    case 'cluster': {
      const cluster = value as Resources['cluster'];
      if (read.get('pack', cluster.name)) {
        p.invalid.push({ field: 'name', rule: `must differ from every pack name ("${cluster.name}" is a pack)` });
      }
      cluster.members.forEach((s, i) => needServer(read, p, `members.${i}`, s, 'http', 'a cluster member'));
      noDuplicates(p, 'members', cluster.members);
      if (cluster.loadBalancer) {
        needServer(read, p, 'loadBalancer', cluster.loadBalancer, 'lb', 'a load balancer');
      }
      break;
    }
    case 'platform': {
      const { target } = value as Resources['platform'];
      if (target.kind === 'server') needServer(read, p, 'target.name', target.name, 'http', 'a platform target');
      else if (!read.get(target.kind, target.name)) {
        p.missing.push({ field: 'target.name', kind: target.kind, name: target.name });
      }
      break;
    }
    case 'site': {
      const site = value as Resources['site'];
      const platform = read.get('platform', site.platform);
      if (!platform) p.missing.push({ field: 'platform', kind: 'platform', name: site.platform });
      if (site.dbServer) needServer(read, p, 'dbServer', site.dbServer, 'db', 'a site database');
      else if (platform && (platform.profile === 'wordpress' || platform.profile === 'drupal')) {
        p.invalid.push({ field: 'dbServer', rule: `is required for a ${platform.profile} site` });
      }
      noDuplicates(p, 'aliases', site.aliases);
      [site.domain, ...site.aliases].forEach((host, i) => {
        const field = i === 0 ? 'domain' : `aliases.${i - 1}`;
        if (i > 0 && host === site.domain) p.invalid.push({ field, rule: 'must differ from the domain' });
        const owner = read.siteServing(host);
        if (owner !== undefined && owner !== site.domain) {
          p.invalid.push({ field, rule: `must not be served by another site ("${host}" belongs to ${owner})` });
        }
      });
      break;
    }
  }
  return p;
}
