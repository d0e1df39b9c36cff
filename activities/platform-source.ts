/**
 * Where a platform's code is on this worker. A `path` source must be on the worker's own disk (with several
 * controllers, route the task to the worker that holds it: a task queue per controller host). `git` and `tarball`
 * sources are fetched into a cache under the data dir, so any worker can serve them.
 */
import { createHash } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { mkdir, readdir, rename, rm, stat } from 'node:fs/promises';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { loadSettings } from '../config/settings';
import type { Platform } from '../domain/model';
import { withKeyedLock } from './support/concurrency-limits';
import { runLocal } from './transport/local-process';
import { FailureType, permanentFailure, transientFailure } from '../common/failures';

function cacheDir(platform: Platform, key: string): string {
  const digest = createHash('sha256').update(key).digest('hex').slice(0, 16);
  return join(loadSettings().dataDir, 'sources', `${platform.name}-${digest}`);
}

async function isDirectory(path: string): Promise<boolean> {
  return stat(path).then(
    (s) => s.isDirectory(),
    () => false,
  );
}

/** Runs a local command; `output` is what it printed (stdout, then stderr). */
async function run(argv: string[], signal?: AbortSignal): Promise<{ code: number | null; output: string }> {
  const r = await runLocal(argv, { signal });
  return { code: r.code, output: `${r.stdout}${r.stderr}`.trim() };
}

async function fetchGit(platform: Platform, url: string, ref: string, signal?: AbortSignal): Promise<string> {
  const dir = cacheDir(platform, `git ${url}`);
  if (await isDirectory(join(dir, '.git'))) {
    const fetched = await run(['git', '-C', dir, 'fetch', '--depth', '1', '--quiet', 'origin', ref], signal);
    if (fetched.code !== 0)
      throw transientFailure(
        FailureType.RsyncFailed,
        `platform ${platform.name}: git fetch ${url} ${ref}: ${fetched.output}`,
      );
    const reset = await run(['git', '-C', dir, 'reset', '--hard', '--quiet', 'FETCH_HEAD'], signal);
    if (reset.code !== 0)
      throw transientFailure(FailureType.RsyncFailed, `platform ${platform.name}: git reset: ${reset.output}`);
    await run(['git', '-C', dir, 'clean', '-ffdxq'], signal);
    return dir;
  }
  await rm(dir, { recursive: true, force: true });
  await mkdir(join(dir, '..'), { recursive: true });
  const cloned = await run(['git', 'clone', '--quiet', '--depth', '1', '--branch', ref, '--', url, dir], signal);
  if (cloned.code !== 0) {
    await rm(dir, { recursive: true, force: true });
    throw transientFailure(
      FailureType.RsyncFailed,
      `platform ${platform.name}: git clone ${url} (${ref}) failed: ${cloned.output}`,
    );
  }
  return dir;
}

/** Downloads and unpacks a tarball once per URL (tarball URLs name a release); one top-level directory is stripped. */
async function fetchTarball(platform: Platform, url: string, signal?: AbortSignal): Promise<string> {
  const dir = cacheDir(platform, `tarball ${url}`);
  if (await isDirectory(dir)) return dir;
  const partial = `${dir}.partial`;
  await rm(partial, { recursive: true, force: true });
  await mkdir(partial, { recursive: true });
  const archive = `${partial}.download`;
  try {
    const response = await fetch(url, { signal });
    if (!response.ok || !response.body) {
      const fail = response.status >= 400 && response.status < 500 ? permanentFailure : transientFailure;
      throw fail(FailureType.BadInput, `platform ${platform.name}: GET ${url} answered ${response.status}`);
    }
    await pipeline(
      Readable.fromWeb(response.body as import('node:stream/web').ReadableStream),
      createWriteStream(archive),
    );
    const unpacked = await run(['tar', '-xf', archive, '-C', partial], signal);
    if (unpacked.code !== 0)
      throw permanentFailure(
        FailureType.BadInput,
        `platform ${platform.name}: ${url} is not a tarball tar can read: ${unpacked.output}`,
      );
    const entries = await readdir(partial);
    const only = entries.length === 1 ? join(partial, entries[0] as string) : undefined;
    await rename(only && (await isDirectory(only)) ? only : partial, dir);
    return dir;
  } finally {
    await rm(partial, { recursive: true, force: true });
    await rm(archive, { force: true });
  }
}

/** The local directory holding the platform's code, fetching git and tarball sources into the worker's cache. */
export async function platformSourceDir(platform: Platform, signal?: AbortSignal): Promise<string> {
  const source = platform.source;
  switch (source.type) {
    case 'path':
      if (!(await isDirectory(source.path))) {
        throw permanentFailure(
          FailureType.BadInput,
          `platform ${platform.name}: source ${source.path} is not a directory on worker host ${hostname()}; a path ` +
            "source must be on the disk of the worker that runs the sync (route it to that worker's task queue)",
        );
      }
      return source.path;
    case 'git':
      return withKeyedLock(`source|${platform.name}`, () => fetchGit(platform, source.url, source.ref, signal));
    case 'tarball':
      return withKeyedLock(`source|${platform.name}`, () => fetchTarball(platform, source.url, signal));
  }
}
