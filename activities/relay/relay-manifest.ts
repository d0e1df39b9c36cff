/**
 * What a relay sends: the platform's file list (chosen by rsync itself with the platform push's own filter rules,
 * so a relay and `syncPlatform` always agree on what belongs to the platform), each entry's type, mode after the
 * push's chmod, size, mtime and link target, and each file's sha256 — computed here, on the controller.
 *
 * Paths are byte strings: they are held as 'latin1' strings (one character per byte), so that names that are not
 * UTF-8 survive unchanged on their way to tar and to the members.
 */
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { lstat, mkdtemp, readFile, readlink, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Platform } from '../../domain/model';
import { abortReason } from '../support/activity-context';
import { settleBounded } from '../../common/settle';
import { FailureType, permanentFailure, transientFailure } from '../../common/failures';
import { PLATFORM_CHMOD, platformSyncFilters } from '../platform';
import { VCS_EXCLUDES } from '../transport/rsync';
import { runLocal } from '../transport/local-process';

/** The permission change every platform push applies: the relay gives files the modes rsync's --chmod gives. */
export const RELAY_CHMOD = PLATFORM_CHMOD;

/** Reads of source files at once while hashing. */
const HASH_PARALLEL = 16;
/** Cached digests are forgotten when the cache grows past this many files. */
const DIGEST_CACHE_LIMIT = 500_000;

export type EntryType = 'd' | 'f' | 'l';

export interface ManifestEntry {
  /** Relative path ('' for the platform root), as a latin1 byte string. */
  path: string;
  type: EntryType;
  /** Permission bits after {@link RELAY_CHMOD} (files and directories). */
  mode: number;
  /** Files: bytes. */
  size: number;
  /** Files and links: whole seconds (tar keeps seconds; rsync compares seconds). */
  mtime: number;
  /** Links: the target, as a latin1 byte string. */
  target?: string;
  /** Files: hex sha256, filled in by {@link hashManifest}. */
  sha256?: string;
  /** Key of the source file's state (device, inode, size, mtime, ctime) for the digest cache. */
  stateKey?: string;
}

export interface SourceManifest {
  source: string;
  entries: ManifestEntry[];
  files: number;
  bytes: number;
}

/** The rsync filter arguments of a platform push, in the order syncPlatform gives them. */
export function platformFilterArgs(profile: Platform['profile']): string[] {
  return [...VCS_EXCLUDES.map((p) => `--filter=- ${p}`), ...platformSyncFilters(profile).map((r) => `--filter=${r}`)];
}

/** Undoes rsync's `\#ooo` escapes of bytes it would not print (newline, a backslash before '#'...). */
function unescapeRsyncName(text: string): string {
  return text.replace(/\\#([0-7]{3})/g, (_, octal: string) => String.fromCharCode(parseInt(octal, 8)));
}

/** The relative paths a platform push would send, in rsync's order (parents before their contents). */
export async function listPushedPaths(
  source: string,
  profile: Platform['profile'],
  signal?: AbortSignal,
): Promise<string[]> {
  const empty = await mkdtemp(join(tmpdir(), 'sitefleet-relay-list-'));
  try {
    const result = await runLocal(
      [
        'rsync',
        '--recursive',
        '--links',
        '--devices',
        '--specials',
        '--dry-run',
        '--8-bit-output',
        '--out-format=sitefleet:%n',
        ...platformFilterArgs(profile),
        `${source.replace(/\/+$/, '')}/`,
        `${empty}/`,
      ],
      { signal, stdoutEncoding: 'latin1' },
    );
    if (result.code !== 0 && result.code !== 24) {
      throw permanentFailure(
        FailureType.BadInput,
        `cannot list the platform source ${source} with rsync (exit ${result.code}): ${result.stderr.trim().slice(-1000)}`,
      );
    }
    const paths = [''];
    for (const line of result.stdout.split('\n')) {
      if (!line.startsWith('sitefleet:')) continue;
      const name = unescapeRsyncName(line.slice('sitefleet:'.length)).replace(/\/$/, '');
      if (name !== '' && name !== '.') paths.push(name);
    }
    return paths;
  } finally {
    await rm(empty, { recursive: true, force: true });
  }
}

/**
 * `chmod`-style symbolic modes as rsync's `--chmod` and tar's `--mode` apply them: comma-separated clauses
 * `[ugoa]*[+-=][rwxX]*`; X means x for directories and for files that already have an x bit.
 */
export function applySymbolicMode(mode: number, spec: string, isDirectory: boolean): number {
  let result = mode & 0o7777;
  for (const clause of spec.split(',')) {
    const match = /^([ugoa]*)([+=-])([rwxX]*)$/.exec(clause);
    if (!match) throw new Error(`unsupported symbolic mode clause "${clause}"`);
    const who = match[1] || 'a';
    const op = match[2] as '+' | '-' | '=';
    const perms = match[3] ?? '';
    const executable = isDirectory || (mode & 0o111) !== 0;
    let bits = 0;
    for (const p of perms) bits |= p === 'r' ? 4 : p === 'w' ? 2 : p === 'x' || (p === 'X' && executable) ? 1 : 0;
    for (const w of who === 'a' ? 'ugo' : who) {
      const shift = w === 'u' ? 6 : w === 'g' ? 3 : 0;
      if (op === '+') result |= bits << shift;
      else if (op === '-') result &= ~(bits << shift);
      else result = (result & ~(7 << shift)) | (bits << shift);
    }
  }
  return result;
}

const fsPath = (source: string, rel: string): Buffer =>
  Buffer.from(rel === '' ? source : `${source.replace(/\/+$/, '')}/${rel}`, 'latin1');

/**
 * The manifest of a platform source without digests: every entry the push sends, with its type, mode, size, mtime
 * and link target. Sockets, fifos and devices have no place in a platform: they are refused.
 */
export async function describeSource(
  source: string,
  profile: Platform['profile'],
  signal?: AbortSignal,
): Promise<SourceManifest> {
  const paths = await listPushedPaths(source, profile, signal);
  const sourceBytes = Buffer.from(source, 'utf8').toString('latin1');
  const entries: ManifestEntry[] = [];
  let files = 0;
  let bytes = 0;
  const settled = await settleBounded(paths, 32, async (rel) => {
    const full = fsPath(sourceBytes, rel);
    const st = await lstat(full, { bigint: true });
    const mtime = Number(st.mtimeNs / 1_000_000_000n);
    const stateKey = `${st.dev}:${st.ino}:${st.size}:${st.mtimeNs}:${st.ctimeNs}`;
    if (st.isDirectory()) {
      return {
        path: rel,
        type: 'd',
        mode: applySymbolicMode(Number(st.mode), RELAY_CHMOD, true),
        size: 0,
        mtime,
      } as ManifestEntry;
    }
    if (st.isSymbolicLink()) {
      const target = (await readlink(full, { encoding: 'buffer' })).toString('latin1');
      return { path: rel, type: 'l', mode: 0o777, size: 0, mtime, target } as ManifestEntry;
    }
    if (st.isFile()) {
      const mode = applySymbolicMode(Number(st.mode), RELAY_CHMOD, false);
      return { path: rel, type: 'f', mode, size: Number(st.size), mtime, stateKey } as ManifestEntry;
    }
    throw permanentFailure(
      FailureType.BadInput,
      `platform source ${source}: ${Buffer.from(rel, 'latin1').toString('utf8')} is not a file, directory or symlink`,
    );
  });
  for (const [i, s] of settled.entries()) {
    if (!s.ok) {
      const err = s.error as NodeJS.ErrnoException;
      if (err.code === 'ENOENT') {
        throw transientFailure(
          FailureType.RsyncFailed,
          `platform source ${source} changed while it was listed (${paths[i]} vanished); try again`,
        );
      }
      throw s.error;
    }
    entries.push(s.value);
    if (s.value.type === 'f') {
      files++;
      bytes += s.value.size;
    }
  }
  return { source, entries, files, bytes };
}

const digestCache = new Map<string, { stateKey: string; sha256: string }>();

/** Files up to this size are read in one call; bigger ones are streamed. */
const READ_WHOLE_BYTES = 8 * 1024 * 1024;

async function sha256Of(file: Buffer, size: number, signal?: AbortSignal): Promise<string> {
  const hash = createHash('sha256');
  if (size <= READ_WHOLE_BYTES) return hash.update(await readFile(file, { signal })).digest('hex');
  for await (const chunk of createReadStream(file, { signal, highWaterMark: 1024 * 1024 }))
    hash.update(chunk as Buffer);
  return hash.digest('hex');
}

/**
 * Fills in the sha256 of every file, reusing the digest of a file whose device, inode, size, mtime and ctime are
 * unchanged since it was last hashed by this worker (as git's index does). Returns how many files were hashed.
 */
export async function hashManifest(manifest: SourceManifest, signal?: AbortSignal): Promise<number> {
  if (digestCache.size > DIGEST_CACHE_LIMIT) digestCache.clear();
  const source = Buffer.from(manifest.source, 'utf8').toString('latin1');
  let hashed = 0;
  const results = await settleBounded(
    manifest.entries.filter((e) => e.type === 'f'),
    HASH_PARALLEL,
    async (entry) => {
      const key = `${source}\0${entry.path}`;
      const cached = digestCache.get(key);
      if (cached && cached.stateKey === entry.stateKey) {
        entry.sha256 = cached.sha256;
        return;
      }
      entry.sha256 = await sha256Of(fsPath(source, entry.path), entry.size, signal);
      hashed++;
      if (entry.stateKey) digestCache.set(key, { stateKey: entry.stateKey, sha256: entry.sha256 });
    },
  );
  if (signal?.aborted) throw abortReason(signal);
  const failed = results.find((r) => !r.ok);
  if (failed && !failed.ok) {
    throw transientFailure(
      FailureType.RsyncFailed,
      `platform source ${manifest.source} could not be read while hashing: ${String(failed.error)}`,
    );
  }
  return hashed;
}

/**
 * One record per entry, as the member's verifier prints them with `find -printf` (see relay-scripts.ts), in byte
 * order, NUL-terminated; file records carry the expected sha256 before the path, which the verifier strips before
 * comparing listings:
 *
 *   d MODE PATH | f MODE SIZE MTIME.0000000000 SHA256 PATH | l TARGETLENGTH TARGET MTIME.0000000000 PATH
 */
export function expectedRecords(manifest: SourceManifest): Buffer {
  const withoutHash: { key: Buffer; record: Buffer }[] = manifest.entries.map((e) => {
    const mtime = `${e.mtime}.0000000000`;
    const path = Buffer.from(e.path, 'latin1');
    const parts = (prefix: string, hash: string | undefined): Buffer =>
      Buffer.concat([
        Buffer.from(prefix, 'latin1'),
        hash ? Buffer.from(`${hash} `) : Buffer.alloc(0),
        path,
        Buffer.from([0]),
      ]);
    switch (e.type) {
      case 'd':
        return {
          key: parts(`d ${e.mode.toString(8)} `, undefined),
          record: parts(`d ${e.mode.toString(8)} `, undefined),
        };
      case 'l': {
        const target = Buffer.from(e.target ?? '', 'latin1');
        const prefix = `l ${target.length} ${e.target ?? ''} ${mtime} `;
        return { key: parts(prefix, undefined), record: parts(prefix, undefined) };
      }
      case 'f': {
        if (!e.sha256) throw new Error(`manifest entry ${e.path} has no digest yet`);
        const prefix = `f ${e.mode.toString(8)} ${e.size} ${mtime} `;
        return { key: parts(prefix, undefined), record: parts(prefix, e.sha256) };
      }
    }
  });
  withoutHash.sort((a, b) => Buffer.compare(a.key, b.key));
  return Buffer.concat(withoutHash.map((r) => r.record));
}

/** The NUL-separated path list tar reads (`--null --files-from=-`): `.` for the root, then every entry in order. */
export function tarFileList(manifest: SourceManifest): Buffer {
  return Buffer.concat(manifest.entries.map((e) => Buffer.from(`${e.path === '' ? '.' : `./${e.path}`}\0`, 'latin1')));
}
