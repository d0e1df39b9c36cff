/**
 * Field rules shared by every entry point (API, CLI, apply files, workflows, activities).
 * Each rule names itself in its message so that a refused request says which rule it broke.
 */
import { z } from 'zod';

/** A resource name: server, pack, cluster, platform. Safe as a path segment and a workflow id part. */
export const resourceName = z
  .string()
  .regex(
    /^[a-z0-9][a-z0-9_-]{0,62}$/,
    'must be 1-63 characters of a-z, 0-9, "-" or "_", starting with a letter or digit',
  );

/** A DNS domain name (RFC 1123 labels), lower case, at least two labels. */
export const domainName = z
  .string()
  .max(253, 'must be at most 253 characters')
  .regex(
    /^(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]([a-z0-9-]{0,61}[a-z0-9])?$/,
    'must be a lower-case DNS name such as example.com (labels of a-z, 0-9 and inner "-")',
  );

const ipv4 = /^(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(\.(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)){3}$/;

/** An IPv4 address. */
export const ipv4Address = z.string().regex(ipv4, 'must be an IPv4 address such as 10.0.0.1');

/** A host: an IPv4 address or a DNS name (single-label names allowed for internal hosts). */
export const hostAddress = z
  .string()
  .max(253, 'must be at most 253 characters')
  .refine(
    (v) => ipv4.test(v) || /^([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*$/.test(v),
    'must be an IPv4 address or a lower-case DNS name',
  );

/** An IPv4 subnet in CIDR notation. */
export const ipv4Subnet = z.string().refine((v) => {
  const [addr, bits, ...rest] = v.split('/');
  return (
    rest.length === 0 &&
    addr !== undefined &&
    ipv4.test(addr) &&
    bits !== undefined &&
    /^([0-9]|[12]\d|3[0-2])$/.test(bits)
  );
}, 'must be an IPv4 subnet in CIDR notation such as 10.0.0.0/24');

/** An absolute POSIX path without "..", empty segments, or characters that need quoting. */
export const absolutePath = z
  .string()
  .max(1024, 'must be at most 1024 characters')
  .regex(/^(\/[A-Za-z0-9._@+-]+)+\/?$|^\/$/, 'must be an absolute path of letters, digits and . _ @ + - only')
  .refine((v) => !v.split('/').some((seg) => seg === '..' || seg === '.'), 'must not contain "." or ".." segments');

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
  );

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
export function fieldErrors(error: z.ZodError): { field: string; rule: string }[] {
  return error.issues.map((issue) => ({
    field: issue.path.length > 0 ? issue.path.map(String).join('.') : '(body)',
    rule: issue.message,
  }));
}
