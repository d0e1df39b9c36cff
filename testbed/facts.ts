/**
 * What `up` tells its users, in two files of the bed dir:
 * - inventory.json: the servers in sitefleet's own format (serverInventorySchema of domain/model.ts);
 * - facts.json: what only a test bed knows (roles, db admin credentials file, lb, subnet, known_hosts),
 *   in the format of bedFactsSchema below.
 */
import { z } from 'zod';
import { type ServerInput, type ServerInventory, serverInventorySchema } from '../domain/model';
import { DB_ADMIN_USER } from './roles/mariadb';
import { GANESHA_CONFIG_FILE, GANESHA_EXPORTS_FILE, GANESHA_PID_FILE } from './roles/ganesha';
import { BACKEND_HEADER, HAPROXY_CONFIG_FILE, LB_PORT } from './roles/haproxy';
import { nginxVhostDir } from './roles/nginx';
import { apacheVhostDir } from './roles/apache';
import { roleDefinition } from './roles';
import { type BedPlan, ROLES } from './plan';

const hostFactsSchema = z.object({
  name: z.string(),
  ip: z.string(),
  roles: z.array(z.enum(ROLES)),
  aegirUid: z.number().int(),
  aegirGid: z.number().int(),
  /** The host key pinned in inventory.json and known_hosts (a `change-host-key` fault does not update it). */
  hostKeyFingerprint: z.string(),
  hostPublicKey: z.string(),
  /** Where sitefleet puts this host's vhosts, for web hosts. */
  vhostDir: z.string().optional(),
});

export const bedFactsSchema = z.object({
  name: z.string(),
  subnet: z.string(),
  bridge: z.string(),
  /** The controller's address on the bed's subnet. */
  bridgeIp: z.string(),
  dir: z.string(),
  inventoryFile: z.string(),
  /** known_hosts pinning every host's key by IP; use with StrictHostKeyChecking=yes. */
  knownHostsFile: z.string(),
  /** The client private key authorized for root and aegir on every host. */
  clientKeyFile: z.string(),
  hosts: z.array(hostFactsSchema),
  db: z
    .object({
      adminUser: z.string(),
      /** Mode 0600 on the controller; the same password on every db host of the bed. */
      passwordFile: z.string(),
      port: z.number().int(),
      hosts: z.array(z.string()),
    })
    .nullable(),
  lb: z
    .object({
      host: z.string(),
      ip: z.string(),
      port: z.number().int(),
      configFile: z.string(),
      /** Response header naming the web host that served a request. */
      backendHeader: z.string(),
      backends: z.array(z.string()),
      reload: z.string(),
    })
    .nullable(),
  nfs: z
    .object({
      hosts: z.array(z.string()),
      configFile: z.string(),
      /** Holds the EXPORT blocks; included by configFile. */
      exportsFile: z.string(),
      pidFile: z.string(),
      reload: z.string(),
    })
    .nullable(),
});
export type BedFacts = z.infer<typeof bedFactsSchema>;
export type HostFacts = z.infer<typeof hostFactsSchema>;

export function buildInventory(
  plan: BedPlan,
  hostPublicKeys: Map<string, string>,
  fingerprints: Map<string, string>,
): ServerInventory {
  const servers = plan.hosts.map((host): ServerInput => {
    const server: ServerInput = {
      name: host.name,
      host: host.ip,
      ssh: { user: 'root', port: 22, keyPath: plan.paths.clientKey, hostKey: fingerprints.get(host.name) ?? '' },
      aegirRoot: '/var/aegir',
      aegirUser: 'aegir',
    };
    for (const role of host.roles) Object.assign(server, roleDefinition(role).inventory ?? {});
    if (!hostPublicKeys.has(host.name)) throw new Error(`host ${host.name} has no host key`);
    return server;
  });
  // Proves the format: sitefleet reads exactly this schema.
  return serverInventorySchema.parse({ servers });
}

export function buildFacts(
  plan: BedPlan,
  hostPublicKeys: Map<string, string>,
  fingerprints: Map<string, string>,
): BedFacts {
  const withRole = (role: (typeof ROLES)[number]) => plan.hosts.filter((h) => h.roles.includes(role));
  const webHosts = plan.hosts.filter((h) => h.roles.includes('web-nginx') || h.roles.includes('web-apache'));
  const lbHost = withRole('lb')[0];
  const facts: BedFacts = {
    name: plan.name,
    subnet: plan.subnet,
    bridge: plan.bridge,
    bridgeIp: plan.bridgeIp,
    dir: plan.paths.dir,
    inventoryFile: plan.paths.inventoryFile,
    knownHostsFile: plan.paths.knownHosts,
    clientKeyFile: plan.paths.clientKey,
    hosts: plan.hosts.map((h) => ({
      name: h.name,
      ip: h.ip,
      roles: h.roles,
      aegirUid: h.aegirUid,
      aegirGid: h.aegirGid,
      hostKeyFingerprint: fingerprints.get(h.name) ?? '',
      hostPublicKey: hostPublicKeys.get(h.name) ?? '',
      vhostDir: h.roles.includes('web-nginx')
        ? nginxVhostDir(h)
        : h.roles.includes('web-apache')
          ? apacheVhostDir(h)
          : undefined,
    })),
    db:
      withRole('db').length > 0
        ? {
            adminUser: DB_ADMIN_USER,
            passwordFile: plan.paths.dbAdminPasswordFile,
            port: 3306,
            hosts: withRole('db').map((h) => h.name),
          }
        : null,
    lb: lbHost
      ? {
          host: lbHost.name,
          ip: lbHost.ip,
          port: LB_PORT,
          configFile: HAPROXY_CONFIG_FILE,
          backendHeader: BACKEND_HEADER,
          backends: webHosts.map((h) => h.name),
          reload: 'service haproxy reload',
        }
      : null,
    nfs:
      withRole('nfs').length > 0
        ? {
            hosts: withRole('nfs').map((h) => h.name),
            configFile: GANESHA_CONFIG_FILE,
            exportsFile: GANESHA_EXPORTS_FILE,
            pidFile: GANESHA_PID_FILE,
            reload: `kill -HUP $(cat ${GANESHA_PID_FILE})`,
          }
        : null,
  };
  return bedFactsSchema.parse(facts);
}
