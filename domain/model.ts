/**
 * The domain model: servers, packs, clusters, platforms and sites.
 * These schemas are the single definition used by the API, the CLI, apply files, workflows and activities.
 */
import { z } from 'zod';
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
} from './fields';
import { transferOptionsSchema } from './transfer';

export const httpServiceSchema = z
  .object({
    type: z.enum(['nginx', 'apache'], { message: 'must be "nginx" or "apache"' }),
    port: tcpPort.default(80),
    /** Port and certificate for https vhosts on this server; absent means the server serves plain http only. */
    https: z
      .object({
        port: tcpPort.default(443),
        certificate: absolutePath,
        key: absolutePath,
      })
      .strict()
      .optional(),
    /** The php-fpm socket vhosts pass PHP to, as found on this server. */
    phpFpmSocket: absolutePath.default('/run/php/php8.2-fpm.sock'),
  })
  .strict();

export const dbServiceSchema = z
  .object({
    type: z.enum(['mariadb', 'mysql'], { message: 'must be "mariadb" or "mysql"' }),
    port: tcpPort.default(3306),
  })
  .strict();

export const nfsServiceSchema = z
  .object({
    /** `kernel`: /etc/exports + exportfs; `ganesha`: nfs-ganesha EXPORT block. */
    flavour: z.enum(['kernel', 'ganesha'], { message: 'must be "kernel" or "ganesha"' }),
  })
  .strict();

/** A load balancer: haproxy on this server fronts a cluster (`cluster set-lb`); sitefleet owns one block of its config. */
export const lbServiceSchema = z
  .object({
    type: z.literal('haproxy', { message: 'must be "haproxy"' }),
    /** The port the cluster's frontend listens on (every address of the server). @default 80 */
    port: tcpPort.default(80),
    /** haproxy's main config file, which gets sitefleet's managed block. @default '/etc/haproxy/haproxy.cfg' */
    configFile: absolutePath.default('/etc/haproxy/haproxy.cfg'),
  })
  .strict();

export const serverSchema = z
  .object({
    name: resourceName,
    /** How the controller reaches the server (IP or DNS name). */
    host: hostAddress,
    ssh: z
      .object({
        user: posixUser.default('root'),
        port: tcpPort.default(22),
        /** Private key on the controller; absent means the worker's default key. */
        keyPath: absolutePath.optional(),
        /** The pinned host key; every connection refuses any other key. */
        hostKey: sshFingerprint,
      })
      .strict(),
    /** The address web nodes use to reach this server's services (defaults to host). */
    address: hostAddress.optional(),
    http: httpServiceSchema.optional(),
    db: dbServiceSchema.optional(),
    nfs: nfsServiceSchema.optional(),
    lb: lbServiceSchema.optional(),
    /** Aegir's layout root on this server. @default '/var/aegir' */
    aegirRoot: ownedDirectory.default('/var/aegir'),
    /** The user that owns platforms and sites. @default 'aegir' */
    aegirUser: posixUser.default('aegir'),
  })
  .strict();
export type Server = z.infer<typeof serverSchema>;
export type ServerInput = z.input<typeof serverSchema>;

/**
 * A directory one server exports over NFS and others mount: a pack's platforms share, a cluster's uploads share.
 * `clients` is the network of the readers; 0.0.0.0/0 only with `exportToAnyone`.
 */
function exportedShare<P extends z.ZodTypeAny>(o: {
  exportPath: P;
  clientFlavour: 'kernel' | 'sshfs';
  readers: string;
  field: string;
}) {
  return z
    .object({
      /** The server that exports the directory (a member or another server). */
      server: resourceName,
      exportPath: o.exportPath,
      /** The readers' network: its address and prefix, such as 10.0.0.0/24. */
      clients: ipv4Subnet,
      /** How readers mount: kernel NFS, or sshfs where the kernel lacks an NFS client. */
      clientFlavour: z.enum(['kernel', 'sshfs'], { message: 'must be "kernel" or "sshfs"' }).default(o.clientFlavour),
      /** `true` lets `clients` be 0.0.0.0/0, an export anyone who reaches the server may mount. @default false */
      exportToAnyone: z.boolean().optional(),
    })
    .strict()
    .refine((share) => share.exportToAnyone || !share.clients.endsWith('/0'), {
      path: ['clients'],
      message: `must not be 0.0.0.0/0 (the export would be open to anyone): name ${o.readers} subnet, or set ${o.field}.exportToAnyone: true to force it`,
    });
}

export const packSchema = z
  .object({
    name: resourceName,
    master: resourceName,
    slaves: z.array(resourceName).max(64, 'must list at most 64 slaves').default([]),
    share: exportedShare({
      exportPath: ownedDirectory.default('/var/aegir/platforms'),
      clientFlavour: 'kernel',
      readers: "the web nodes'",
      field: 'share',
    }),
    /** How platform code reaches the master: parallel rsync or relay, and the link rates `auto` decides by. */
    transfer: transferOptionsSchema.optional(),
  })
  .strict();
export type Pack = z.infer<typeof packSchema>;

export const clusterSchema = z
  .object({
    name: resourceName,
    members: z.array(resourceName).min(1, 'must list at least one member').max(64, 'must list at most 64 members'),
    /** How uploaded files are kept consistent across members. */
    files: z
      .enum(['nfs-shared', 'pin-to-one', 'none'], { message: 'must be nfs-shared, pin-to-one or none' })
      .default('none'),
    loadBalancer: resourceName.optional(),
    /**
     * Where the cluster's uploads live: a share on a files server, mounted on every member at
     * `<aegirRoot>/shared/<cluster>`; each site's `files/` and `private/` on a member are symlinks into it
     * (workflows/cluster-uploads.ts). Absent: every member keeps its own uploads.
     */
    uploads: exportedShare({
      exportPath: ownedDirectory,
      clientFlavour: 'sshfs',
      readers: "the members'",
      field: 'uploads',
    }).optional(),
    /** How platform code reaches the members: parallel rsync or relay, and the link rates `auto` decides by. */
    transfer: transferOptionsSchema.optional(),
  })
  .strict();
export type Cluster = z.infer<typeof clusterSchema>;

export const platformSourceSchema = z.discriminatedUnion('type', [
  z.object({ type: z.literal('path'), path: absolutePath }).strict(),
  z.object({ type: z.literal('git'), url: sourceUrl, ref: gitRef.default('main') }).strict(),
  z.object({ type: z.literal('tarball'), url: sourceUrl }).strict(),
]);
export type PlatformSource = z.infer<typeof platformSourceSchema>;

/** Where a platform lives: one server, a pack or a cluster. */
export const targetSchema = z
  .object({
    kind: z.enum(['server', 'pack', 'cluster'], { message: 'must be "server", "pack" or "cluster"' }),
    name: resourceName,
  })
  .strict();
export type Target = z.infer<typeof targetSchema>;

export const platformSchema = z
  .object({
    name: resourceName,
    target: targetSchema,
    source: platformSourceSchema,
    profile: z.enum(['wordpress', 'drupal', 'php', 'static'], { message: 'must be wordpress, drupal, php or static' }),
  })
  .strict();
export type Platform = z.infer<typeof platformSchema>;

export const siteSchema = z
  .object({
    domain: domainName,
    aliases: z.array(domainName).max(32, 'must list at most 32 aliases').default([]),
    platform: resourceName,
    /** The database server; absent for static sites. */
    dbServer: resourceName.optional(),
    https: z.boolean().default(false),
    status: z.enum(['enabled', 'disabled']).default('enabled'),
  })
  .strict();
export type Site = z.infer<typeof siteSchema>;

/** The file format of an inventory of servers, written by the test-host bed and read by `sitefleet apply`. */
export const serverInventorySchema = z
  .object({
    servers: z.array(serverSchema),
  })
  .strict();
export type ServerInventory = z.infer<typeof serverInventorySchema>;
