/**
 * Turns bed options into a plan: every name, address, directory and role of a bed, computed before
 * anything is created, so that `down` can find every piece even when `up` stopped halfway.
 */
import * as os from 'node:os';
import * as path from 'node:path';
import { checkLinkShaping, type LinkShaping } from './link-shaping';

export const ROLES = ['web-nginx', 'web-apache', 'db', 'nfs', 'lb', 'nfs-kernel'] as const;
/** Roles a VM host (a QEMU guest, `vm: true`) can have; `nfs-kernel` (the kernel's nfsd) needs one. */
export const VM_ROLES: readonly Role[] = ['web-nginx', 'nfs-kernel'];
export type Role = (typeof ROLES)[number];

/** A bed name: a prefix of interface names (15 characters at most in Linux), hence short. */
const BED_NAME = /^[a-z][a-z0-9]{0,7}$/;
/** A host name: a valid sitefleet resource name and hostname. */
const HOST_NAME = /^[a-z][a-z0-9-]{0,30}$/;

export const DEFAULT_SUBNET = '10.231.0.0/24';
export const DEFAULT_BED_NAME = 'dev';
export const DEFAULT_AEGIR_ID = 1500;
/** Host addresses start at .11 of the subnet; the bridge (the controller's side) is .1. */
const FIRST_HOST_OFFSET = 11;
const MAX_HOSTS = 64;

export interface HostOptions {
  /** @default `h<index>` counting from 1 */
  name?: string;
  /** @default the bed's `roles` */
  roles?: readonly Role[];
  /** uid of the `aegir` user on this host. @default the bed's `aegirUid` */
  aegirUid?: number;
  /** gid of the `aegir` group on this host. @default this host's aegirUid */
  aegirGid?: number;
  /** A QEMU guest with its own Debian kernel (nfsd, the NFS client) instead of a network namespace. @default false */
  vm?: boolean;
}

export interface BedOptions {
  /** The number of hosts, or one entry per host. */
  hosts: number | readonly HostOptions[];
  /** Roles of hosts that do not list their own. @default ['web-nginx'] */
  roles?: readonly Role[];
  /** 1-8 characters, a-z then a-z0-9; prefixes the bed's netns, bridge and veth names. @default 'dev' */
  name?: string;
  /** A private IPv4 subnet, /16 to /24, routed nowhere else on this machine. @default '10.231.0.0/24' */
  subnet?: string;
  /** Where bed directories live. @default $SITEFLEET_TESTBED_DIR or /tmp/sitefleet-testbed */
  baseDir?: string;
  /** uid (and gid) of `aegir` on every host that does not set its own. @default 1500 */
  aegirUid?: number;
  /**
   * Record this process as the bed's owner: a bed whose owner has died may be torn down by anyone
   * (the test helper does so). @default false
   */
  ephemeral?: boolean;
  /** Limit the bandwidth of every host's link and of the controller's egress (tc tbf). @default no limit */
  shaping?: LinkShaping;
}

export interface HostPlan {
  index: number;
  name: string;
  ip: string;
  roles: Role[];
  aegirUid: number;
  aegirGid: number;
  /** The host's network namespace, `sf-BED-HOST`. */
  netns: string;
  /** The root-namespace end of the host's veth, a port of the bed's bridge; `eth0` inside the host. */
  veth: string;
  /** Controller-side directory with the host's overlay upper dirs and bind-mount sources. */
  dir: string;
  /** A QEMU guest (testbed/vm): no netns; `veth` names its tap on the bridge. */
  vm?: boolean;
}

export interface BedPaths {
  dir: string;
  /** Runtime record: interfaces, PIDs, owner (internal to the test bed). */
  stateFile: string;
  /** Public facts for consumers of the bed: see bedFactsSchema in facts.ts. */
  factsFile: string;
  /** The servers in sitefleet's inventory format (serverInventorySchema). */
  inventoryFile: string;
  clientKey: string;
  knownHosts: string;
  dbAdminPasswordFile: string;
  hostsDir: string;
  logsDir: string;
}

export interface BedPlan {
  name: string;
  subnet: string;
  prefixLength: number;
  bridge: string;
  /** The bridge's address: the controller as the hosts see it. */
  bridgeIp: string;
  hosts: HostPlan[];
  paths: BedPaths;
  ephemeral: boolean;
  /** The link shaping applied at start-up (see testbed/shaping.ts), if any. */
  shaping?: LinkShaping;
}

export function defaultBaseDir(): string {
  return process.env['SITEFLEET_TESTBED_DIR'] || path.join(os.tmpdir(), 'sitefleet-testbed');
}

export function assertBedName(name: string): void {
  if (!BED_NAME.test(name)) {
    throw new Error(`bed name "${name}" is invalid: use 1-8 characters, a-z first, then a-z or 0-9`);
  }
}

export function bridgeName(bedName: string): string {
  return `sf-${bedName}`;
}

/** Every netns of bed `bedName` starts with this; bed names contain no "-", so prefixes never overlap. */
export function netnsPrefix(bedName: string): string {
  return `sf-${bedName}-`;
}

export function bedPaths(bedName: string, baseDir: string = defaultBaseDir()): BedPaths {
  assertBedName(bedName);
  const dir = path.join(path.resolve(baseDir), bedName);
  return {
    dir,
    stateFile: path.join(dir, 'state.json'),
    factsFile: path.join(dir, 'facts.json'),
    inventoryFile: path.join(dir, 'inventory.json'),
    clientKey: path.join(dir, 'id_ed25519'),
    knownHosts: path.join(dir, 'known_hosts'),
    dbAdminPasswordFile: path.join(dir, 'db-admin.password'),
    hostsDir: path.join(dir, 'hosts'),
    logsDir: path.join(dir, 'logs'),
  };
}

export function parseIpv4(ip: string): number {
  const parts = ip.split('.');
  if (parts.length !== 4 || parts.some((p) => !/^(0|[1-9]\d{0,2})$/.test(p) || Number(p) > 255)) {
    throw new Error(`"${ip}" is not an IPv4 address`);
  }
  return parts.reduce((acc, p) => acc * 256 + Number(p), 0);
}

export function formatIpv4(n: number): string {
  return [24, 16, 8, 0].map((shift) => Math.floor(n / 2 ** shift) % 256).join('.');
}

export interface Ipv4Subnet {
  network: number;
  prefixLength: number;
  /** Number of addresses in the subnet. */
  size: number;
}

export function parseSubnet(cidr: string): Ipv4Subnet {
  const [addr, bits, ...rest] = cidr.split('/');
  const prefixLength = Number(bits);
  if (addr === undefined || rest.length > 0 || !/^\d{1,2}$/.test(bits ?? '') || prefixLength > 32) {
    throw new Error(`subnet "${cidr}" is not in CIDR notation such as 10.231.0.0/24`);
  }
  const size = 2 ** (32 - prefixLength);
  const network = parseIpv4(addr);
  if (network % size !== 0) throw new Error(`subnet "${cidr}" has host bits set; did you mean a network address?`);
  return { network, prefixLength, size };
}

export function subnetsOverlap(a: Ipv4Subnet, b: Ipv4Subnet): boolean {
  return a.network < b.network + b.size && b.network < a.network + a.size;
}

function isPrivate(subnet: Ipv4Subnet): boolean {
  const ranges = ['10.0.0.0/8', '172.16.0.0/12', '192.168.0.0/16'].map(parseSubnet);
  return ranges.some((r) => subnet.network >= r.network && subnet.network + subnet.size <= r.network + r.size);
}

function assertRoles(hostName: string, roles: readonly Role[], vm: boolean): void {
  for (const role of roles) {
    if (!ROLES.includes(role)) throw new Error(`host ${hostName}: unknown role "${role}" (known: ${ROLES.join(', ')})`);
    if (vm && !VM_ROLES.includes(role)) {
      throw new Error(`host ${hostName}: a VM host cannot have role "${role}" (VM roles: ${VM_ROLES.join(', ')})`);
    }
    if (!vm && role === 'nfs-kernel') {
      throw new Error(
        `host ${hostName}: role nfs-kernel needs a VM host (this machine's kernel has no nfsd): use vm:nfs-kernel`,
      );
    }
  }
  if (roles.includes('web-nginx') && roles.includes('web-apache')) {
    throw new Error(`host ${hostName}: web-nginx and web-apache both want port 80; give them separate hosts`);
  }
  if (roles.includes('lb') && (roles.includes('web-nginx') || roles.includes('web-apache'))) {
    throw new Error(`host ${hostName}: lb and a web role both want port 80; give them separate hosts`);
  }
}

function assertId(what: string, id: number): void {
  if (!Number.isInteger(id) || id < 1000 || id > 60000) throw new Error(`${what} ${id} must be an integer 1000-60000`);
}

export function planBed(options: BedOptions): BedPlan {
  const name = options.name ?? DEFAULT_BED_NAME;
  assertBedName(name);
  const subnetText = options.subnet ?? DEFAULT_SUBNET;
  const subnet = parseSubnet(subnetText);
  if (subnet.prefixLength < 16 || subnet.prefixLength > 24) {
    throw new Error(`subnet ${subnetText}: use a prefix length from /16 to /24`);
  }
  if (!isPrivate(subnet)) throw new Error(`subnet ${subnetText} is not a private (RFC 1918) range`);

  const hostOptions: readonly HostOptions[] =
    typeof options.hosts === 'number' ? Array.from({ length: options.hosts }, () => ({})) : options.hosts;
  if (hostOptions.length < 1 || hostOptions.length > MAX_HOSTS) {
    throw new Error(`a bed has 1-${MAX_HOSTS} hosts, not ${hostOptions.length}`);
  }
  if (FIRST_HOST_OFFSET + hostOptions.length >= subnet.size - 1) {
    throw new Error(`subnet ${subnetText} is too small for ${hostOptions.length} hosts`);
  }
  const paths = bedPaths(name, options.baseDir);
  const defaultUid = options.aegirUid ?? DEFAULT_AEGIR_ID;
  assertId('aegirUid', defaultUid);

  const hosts = hostOptions.map((h, i): HostPlan => {
    const index = i + 1;
    const hostName = h.name ?? `h${index}`;
    if (!HOST_NAME.test(hostName)) {
      throw new Error(`host name "${hostName}" is invalid: use a-z first, then a-z, 0-9 or "-" (31 at most)`);
    }
    const roles: Role[] = [...new Set<Role>(h.roles ?? options.roles ?? ['web-nginx'])];
    assertRoles(hostName, roles, h.vm === true);
    const aegirUid = h.aegirUid ?? defaultUid;
    const aegirGid = h.aegirGid ?? aegirUid;
    assertId(`host ${hostName}: aegirUid`, aegirUid);
    assertId(`host ${hostName}: aegirGid`, aegirGid);
    return {
      index,
      name: hostName,
      ip: formatIpv4(subnet.network + FIRST_HOST_OFFSET + i),
      roles,
      aegirUid,
      aegirGid,
      netns: `${netnsPrefix(name)}${hostName}`,
      veth: `sf-${name}-${index}`,
      dir: path.join(paths.hostsDir, hostName),
      ...(h.vm ? { vm: true } : {}),
    };
  });
  const names = hosts.map((h) => h.name);
  const duplicate = names.find((n, i) => names.indexOf(n) !== i);
  if (duplicate) throw new Error(`host name "${duplicate}" is used twice`);

  return {
    name,
    subnet: subnetText,
    prefixLength: subnet.prefixLength,
    bridge: bridgeName(name),
    bridgeIp: formatIpv4(subnet.network + 1),
    hosts,
    paths,
    ephemeral: options.ephemeral ?? false,
    ...(options.shaping ? { shaping: checkLinkShaping(options.shaping) } : {}),
  };
}
