/**
 * Where a server's ssh private key may live: inside one of the configured key directories
 * (SITEFLEET_SSH_KEY_DIRS), never one of sitefleet's own secret files, and not through a link that leads out.
 * Without this, a client could register a server whose keyPath is the API token file and have the worker read it.
 */
import { existsSync, realpathSync, statSync } from 'node:fs';
import { resolve, sep } from 'node:path';
import type { Settings } from '../config/settings';

const inside = (path: string, dir: string) => path.startsWith(dir.endsWith(sep) ? dir : dir + sep);

/** Why `keyPath` is refused, or undefined when it may be used. */
export function keyPathProblem(keyPath: string, settings: Settings): string | undefined {
  const dirs = settings.sshKeyDirs;
  const rule = `must be a private key file inside a key directory (${dirs.join(', ')}; set SITEFLEET_SSH_KEY_DIRS), or be left out to use the worker's default key`;
  const path = resolve(keyPath);
  if (!dirs.some((dir) => inside(path, dir))) return rule;
  const own = [settings.tokenFile, settings.secretFile, settings.inventoryFile, settings.codecKeyFile]
    .filter((f): f is string => Boolean(f))
    .map((f) => resolve(f));
  if (existsSync(path)) {
    const real = realpathSync(path);
    const realDirs = dirs.filter((dir) => existsSync(dir)).map((dir) => realpathSync(dir));
    if (!realDirs.some((dir) => inside(real, dir))) return `${rule}; ${keyPath} is a link that leads out of it`;
    if (!statSync(real).isFile()) return `${rule}; ${keyPath} is not a regular file`;
    if (own.some((f) => existsSync(f) && realpathSync(f) === real))
      return `${rule}; ${keyPath} is one of sitefleet's own secret files`;
  }
  if (own.includes(path)) return `${rule}; ${keyPath} is one of sitefleet's own secret files`;
  return undefined;
}
