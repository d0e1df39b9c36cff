/**
 * Field rules shared by every entry point (API, CLI, apply files, workflows, activities).
 * Each rule names itself in its message so that a refused request says which rule it broke.
 */
import { toASCII, toUnicode } from 'tr46';
import { z } from 'zod';

/** A resource name: server, pack, cluster, platform. Safe as a path segment and a workflow id part. */
export const resourceName = z
  .string()
  .regex(
    /^[a-z0-9][a-z0-9_-]{0,62}$/,
    'must be 1-63 characters of a-z, 0-9, "-" or "_", starting with a letter or digit',
  );

/**
 * Whose share a managed block (exports, fstab, authorized_keys) or an sshfs key belongs to: a pack (its name) or a
 * cluster's uploads share (`uploads.CLUSTER`). The dot keeps the two apart: no resource name has one, so a pack
 * called `web-uploads` and cluster `web`'s uploads never share a block or a key.
 */
export const shareOwnerName = z
  .string()
  .regex(
    /^(uploads\.)?[a-z0-9][a-z0-9_-]{0,62}$/,
    'must be a pack name or "uploads." and a cluster name (1-63 characters of a-z, 0-9, "-" or "_")',
  );

/** UTS #46 non-transitional processing with the checks IDNA2008 registration needs (RFC 5891 section 4). */
const IDNA_OPTIONS = {
  checkHyphens: true,
  checkBidi: true,
  checkJoiners: true,
  useSTD3ASCIIRules: true,
  verifyDNSLength: true,
  transitionalProcessing: false,
} as const;

/**
 * Why a domain name is not a valid IDNA name in its ASCII form (UTS #46 with hyphen, bidi and joiner checks, via
 * the tr46 library), or undefined when it is. Catches invalid punycode (`xn--a`), reserved hyphens in positions
 * 3-4 (`ab--cd`) and Unicode input (which must be sent as its punycode form).
 */
export function idnaProblem(name: string): string | undefined {
  const ascii = toASCII(name, IDNA_OPTIONS);
  if (ascii === null) {
    const bad = name.split('.').find((label) => toASCII(label, IDNA_OPTIONS) === null);
    if (bad?.startsWith('xn--')) return `label "${bad}" is not valid punycode (IDNA, RFC 5891)`;
    if (bad !== undefined && bad.slice(2, 4) === '--') {
      return `label "${bad}" has "--" in positions 3-4, which IDNA reserves for encodings such as xn--`;
    }
    return `is not a valid internationalised domain name (UTS #46)${bad !== undefined ? `: label "${bad}"` : ''}`;
  }
  if (ascii !== name) return `must be sent in its ASCII (punycode) form: ${ascii}`;
  return undefined;
}

/** The Unicode form of an ASCII domain name (`xn--bcher-kva.example` -> `bücher.example`); itself if plain ASCII. */
export function unicodeDomain(name: string): string {
  const { domain, error } = toUnicode(name, IDNA_OPTIONS);
  return error ? name : domain;
}

/** `bücher.example (xn--bcher-kva.example)` for a punycode name, the name alone otherwise. */
export function displayDomain(name: string): string {
  const unicode = unicodeDomain(name);
  return unicode === name ? name : `${unicode} (${name})`;
}

/**
 * A DNS domain name (RFC 1123 labels), lower case, at least two labels, in ASCII form; internationalised names
 * as punycode A-labels that pass IDNA validation.
 */
export const domainName = z
  .string()
  .max(253, 'must be at most 253 characters')
  .regex(
    /^(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]([a-z0-9-]{0,61}[a-z0-9])?$/,
    'must be a lower-case DNS name such as example.com (labels of a-z, 0-9 and inner "-"; punycode for IDN)',
  )
  .superRefine((v, ctx) => {
    // Names of the right characters, and Unicode names (told their punycode form); the regex speaks for the rest.
    if (!/^[a-z0-9.-]+$/.test(v) && !/[\u0080-\uffff]/.test(v)) return;
    const problem = idnaProblem(v);
    if (problem) ctx.addIssue({ code: 'custom', message: problem });
  });

const ipv4 = /^(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(\.(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)){3}$/;

/** An IPv4 address. */
export const ipv4Address = z.string().regex(ipv4, 'must be an IPv4 address such as 10.0.0.1');

const hostName = /^([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*$/;

/**
 * True for names that resolvers read as numbers: a last label of digits only (or 0x hex), as in `127.1`,
 * `0177.0.0.1` or `256.1.1.1`. Such a name is an IPv4 address or nothing (no top-level domain is numeric).
 */
function looksNumeric(name: string): boolean {
  const last = name.split('.').pop() ?? '';
  return /^[0-9]+$/.test(last) || /^0x[0-9a-f]*$/.test(last);
}

/** A host: an IPv4 address or a DNS name (single-label names allowed for internal hosts). */
export const hostAddress = z
  .string()
  .max(253, 'must be at most 253 characters')
  .refine((v) => ipv4.test(v) || hostName.test(v), 'must be an IPv4 address or a lower-case DNS name')
  .refine(
    (v) => ipv4.test(v) || !hostName.test(v) || !looksNumeric(v),
    'must be a dotted-quad IPv4 address (four numbers 0-255 without leading zeros) or a DNS name whose last label is not a number',
  );

/** The network address of `addr/bits` (host bits cleared), as a dotted quad. */
export function networkAddress(addr: string, bits: number): string {
  const n = addr.split('.').reduce((acc, part) => acc * 256 + Number(part), 0);
  const mask = bits === 0 ? 0 : (0xffffffff << (32 - bits)) >>> 0;
  const net = (n & mask) >>> 0;
  return [24, 16, 8, 0].map((shift) => (net >>> shift) & 255).join('.');
}

/**
 * Whether `address` lies in `subnet` (CIDR). `undefined` when `address` is a DNS name: only the resolver knows.
 */
export function ipv4InSubnet(address: string, subnet: string): boolean | undefined {
  if (!ipv4.test(address)) return undefined;
  const [net, bits] = subnet.split('/');
  return networkAddress(address, Number(bits)) === net;
}

/** An IPv4 subnet in CIDR notation, written with its network address (no host bits set). */
export const ipv4Subnet = z
  .string()
  .refine((v) => {
    const [addr, bits, ...rest] = v.split('/');
    return (
      rest.length === 0 &&
      addr !== undefined &&
      ipv4.test(addr) &&
      bits !== undefined &&
      /^([0-9]|[12]\d|3[0-2])$/.test(bits)
    );
  }, 'must be an IPv4 subnet in CIDR notation such as 10.0.0.0/24')
  .superRefine((v, ctx) => {
    const [addr, bits] = v.split('/');
    if (addr === undefined || bits === undefined || !ipv4.test(addr) || !/^\d+$/.test(bits)) return;
    const net = networkAddress(addr, Number(bits));
    if (net !== addr) {
      ctx.addIssue({
        code: 'custom',
        message: `has host bits set: refused rather than guessed; the subnet is ${net}/${bits} (or ${addr}/32 for the one host)`,
      });
    }
  });

/** An absolute POSIX path without "..", empty segments, or characters that need quoting. */
export const absolutePath = z
  .string()
  .max(1024, 'must be at most 1024 characters')
  .regex(/^(\/[A-Za-z0-9._@+-]+)+\/?$|^\/$/, 'must be an absolute path of letters, digits and . _ @ + - only')
  .refine((v) => !v.split('/').some((seg) => seg === '..' || seg === '.'), 'must not contain "." or ".." segments');

/** Directories sitefleet must never own, write into as a tree, or export: the system's own. */
const SYSTEM_DIRECTORIES = new Set([
  '/',
  '/bin',
  '/boot',
  '/dev',
  '/etc',
  '/home',
  '/lib',
  '/lib32',
  '/lib64',
  '/libx32',
  '/media',
  '/mnt',
  '/opt',
  '/proc',
  '/root',
  '/run',
  '/sbin',
  '/srv',
  '/sys',
  '/tmp',
  '/usr',
  '/var',
  '/usr/bin',
  '/usr/lib',
  '/usr/local',
  '/usr/sbin',
  '/usr/share',
  '/var/lib',
  '/var/log',
  '/var/cache',
  '/var/tmp',
  '/var/spool',
  '/var/mail',
  '/var/run',
]);
/** Trees whose insides are the system's: nothing sitefleet owns lives there. */
const SYSTEM_TREES = [
  '/bin',
  '/boot',
  '/dev',
  '/etc',
  '/lib',
  '/lib32',
  '/lib64',
  '/libx32',
  '/proc',
  '/run',
  '/sbin',
  '/sys',
  '/usr',
];

/** True when `path` (absolute, normalised) is a system directory or inside one of the system's own trees. */
export function isSystemPath(path: string): boolean {
  const p = path.length > 1 ? path.replace(/\/+$/, '') : path;
  return SYSTEM_DIRECTORIES.has(p) || SYSTEM_TREES.some((tree) => p === tree || p.startsWith(`${tree}/`));
}

/**
 * A directory sitefleet owns on a server (Aegir's root, an export): an absolute path, not "/", not a system
 * directory such as /etc or /var, and not inside /etc, /usr, /proc and the like.
 */
export const ownedDirectory = absolutePath.refine(
  (v) => !isSystemPath(v),
  'must be a directory of its own such as /var/aegir, not "/", a system directory (/etc, /var, /usr ...) or a path inside /etc, /usr, /proc, /sys, /dev, /boot or /run',
);

/** A POSIX user name. */
export const posixUser = z.string().regex(/^[a-z_][a-z0-9_-]{0,31}$/, 'must be a POSIX user name (a-z, 0-9, _ and -)');

/** A TCP port. */
export const tcpPort = z.number().int('must be an integer').min(1, 'must be 1-65535').max(65535, 'must be 1-65535');

/** An OpenSSH SHA256 host key fingerprint, as printed by `ssh-keygen -lf`. */
export const sshFingerprint = z
  .string()
  .regex(/^SHA256:[A-Za-z0-9+/]{43}$/, 'must be an OpenSSH SHA256 fingerprint such as SHA256:<43 base64 characters>');

/** A git or https URL for a platform source: scheme, host, then a path of URL-safe characters (no quotes or `$`). */
export const sourceUrl = z
  .string()
  .max(2048, 'must be at most 2048 characters')
  .regex(
    /^(https?|git|ssh):\/\/([A-Za-z0-9._~-]+@)?[A-Za-z0-9.-]+(:[0-9]{1,5})?(\/[A-Za-z0-9._~/+=%-]*)?(\?[A-Za-z0-9._~/+=%&-]*)?$/,
    'must be an http(s), git or ssh URL: scheme://host[:port]/path with no spaces, quotes, $ or backticks',
  )
  .refine((v) => {
    // ssh and git read a host (or user) that starts with "-" as an option: ssh://-oProxyCommand=.../x
    const authority = /^[a-z]+:\/\/([^/?]*)/.exec(v)?.[1] ?? '';
    const [user, host] = authority.includes('@') ? authority.split('@', 2) : ['', authority];
    return !host!.startsWith('-') && !host!.startsWith('.') && !user!.startsWith('-');
  }, 'must have a host (and user) that does not start with "-" or "." (ssh would read it as an option)');

/** A git ref name (git check-ref-format rules that matter here: no "..", no leading "-" or "/", no "//"). */
export const gitRef = z
  .string()
  .regex(/^[A-Za-z0-9._/-]{1,200}$/, 'must be a git ref of letters, digits and . _ / -')
  .refine(
    (v) =>
      !v.includes('..') &&
      !v.startsWith('-') &&
      !v.startsWith('/') &&
      !v.endsWith('/') &&
      !v.includes('//') &&
      !v.endsWith('.lock'),
    'must be a valid git ref: no "..", "//", leading "-" or "/", trailing "/" or ".lock"',
  );

/** Turns zod issues into `{ field, rule }` pairs, the shape every entry point reports. */
export function fieldErrors(error: z.ZodError, root = '(body)'): { field: string; rule: string }[] {
  return error.issues.map((issue) => ({
    field: issue.path.length > 0 ? issue.path.map(String).join('.') : root,
    rule: issue.message,
  }));
}
