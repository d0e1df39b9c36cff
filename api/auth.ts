/**
 * Bearer-token access to the API. The token is generated on first start, kept in a 0600 file,
 * and compared in constant time.
 */
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { chmodSync, mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import type { RequestHandler } from 'express';

/**
 * Reads the API token from `file`, or generates one and writes it with mode 0600 when the file does not exist.
 * @returns the token, and whether this call created it (the caller prints it once)
 */
export function loadOrCreateToken(file: string): { token: string; created: boolean } {
  try {
    const token = readFileSync(file, 'utf8').trim();
    if (token.length < 32) throw new Error(`API token file ${file} holds no usable token; delete it to generate one`);
    if ((statSync(file).mode & 0o077) !== 0) chmodSync(file, 0o600);
    return { token, created: false };
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
  mkdirSync(dirname(file), { recursive: true, mode: 0o700 });
  const token = randomBytes(32).toString('base64url');
  // 'wx' fails if another process created the file meanwhile, rather than overwriting its token.
  writeFileSync(file, `${token}\n`, { mode: 0o600, flag: 'wx' });
  return { token, created: true };
}

const digest = (s: string): Buffer => createHash('sha256').update(s, 'utf8').digest();

/** Compares in constant time: both sides are hashed first, so neither the length nor the content leaks. */
export function tokenMatches(given: string, expected: string): boolean {
  return timingSafeEqual(digest(given), digest(expected));
}

/** Requires `Authorization: Bearer TOKEN`; answers 401 otherwise. */
export function requireToken(token: string): RequestHandler {
  return (req, res, next) => {
    const header = req.get('authorization') ?? '';
    const match = /^Bearer ([^\s]+)$/i.exec(header);
    if (!match?.[1] || !tokenMatches(match[1], token)) {
      res
        .status(401)
        .set('WWW-Authenticate', 'Bearer realm="sitefleet"')
        .json({ error: 'missing or wrong API token: send "Authorization: Bearer TOKEN"' });
      return;
    }
    next();
  };
}
