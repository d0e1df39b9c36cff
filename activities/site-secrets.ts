/**
 * Per-site secrets (database password, WordPress keys and salts, Drupal hash salt, the WordPress admin password),
 * derived where they are used: HMAC-SHA256 of the worker secret and the site's domain. Every activity that needs
 * one (create the database user, write settings on each node) recomputes the same value, so no secret is ever an
 * activity argument or result and none crosses Temporal history.
 *
 * The worker secret is a file (SITEFLEET_SECRET_FILE, default `<data dir>/worker-secret`) created 0600 on first
 * use. Every worker of one installation must hold the same file.
 */
import { createHmac, randomBytes } from 'node:crypto';
import { chmod, mkdir, open, readFile, stat } from 'node:fs/promises';
import { dirname } from 'node:path';
import { loadSettings } from '../config/settings';
import { domainName } from '../domain/fields';
import { parseInput } from './support/activity-input';

let cached: { path: string; secret: Buffer } | undefined;

/** The secret file's path (read from the environment each time, so tests can point it elsewhere). */
export function workerSecretPath(): string {
  return loadSettings().secretFile;
}

/** The worker secret, created (32 random bytes, hex, mode 0600) if the file does not exist yet. */
export async function workerSecret(): Promise<Buffer> {
  const path = workerSecretPath();
  if (cached?.path === path) return cached.secret;
  await mkdir(dirname(path), { recursive: true, mode: 0o700 });
  try {
    const handle = await open(path, 'wx', 0o600);
    try {
      await handle.writeFile(`${randomBytes(32).toString('hex')}\n`);
    } finally {
      await handle.close();
    }
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
  }
  const info = await stat(path);
  if ((info.mode & 0o077) !== 0) await chmod(path, 0o600);
  const text = (await readFile(path, 'utf8')).trim();
  if (text.length < 32)
    throw new Error(`worker secret ${path} is shorter than 32 characters; remove it to generate a new one`);
  const secret = Buffer.from(text, 'utf8');
  cached = { path, secret };
  return secret;
}

async function derive(purpose: string, domain: string, length: number): Promise<string> {
  const d = parseInput(domainName, domain, 'site domain');
  const mac = createHmac('sha256', await workerSecret())
    .update(`sitefleet:${purpose}\0${d}`)
    .digest('base64url');
  return mac.slice(0, length);
}

/** The database password of a site: 32 base64url characters (about 190 bits). */
export function dbPasswordFor(domain: string): Promise<string> {
  return derive('db-password', domain, 32);
}

/** The password of the WordPress admin account the installer creates. */
export function wordpressAdminPasswordFor(domain: string): Promise<string> {
  return derive('wordpress-admin-password', domain, 24);
}

const WORDPRESS_SALT_NAMES = [
  'AUTH_KEY',
  'SECURE_AUTH_KEY',
  'LOGGED_IN_KEY',
  'NONCE_KEY',
  'AUTH_SALT',
  'SECURE_AUTH_SALT',
  'LOGGED_IN_SALT',
  'NONCE_SALT',
];

/** The salts a site's settings file defines: WordPress's eight keys and salts, or Drupal's hash salt. */
export async function siteSaltsFor(domain: string, profile: string): Promise<{ name: string; value: string }[]> {
  const names = profile === 'wordpress' ? WORDPRESS_SALT_NAMES : ['HASH_SALT'];
  return Promise.all(names.map(async (name) => ({ name, value: await derive(`salt:${name}`, domain, 43) })));
}
