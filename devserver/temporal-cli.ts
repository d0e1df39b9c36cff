/**
 * Finds the Temporal CLI (dev server + Web UI), or installs it with `go install` into a cache outside the repository.
 *
 * Order: $SITEFLEET_TEMPORAL_BIN, the cache, `temporal` on PATH, then `go install` into the cache.
 */
import { execFile, spawnSync } from 'node:child_process';
import { accessSync, constants, mkdirSync } from 'node:fs';
import { homedir } from 'node:os';
import { delimiter, join } from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);

/** The CLI version sitefleet installs. v1.5.1 is the newest tag `go install` accepts. */
export const TEMPORAL_CLI_VERSION = 'v1.5.1';

/** @default ~/.cache/sitefleet/temporal-v1.5.1 (or $SITEFLEET_CACHE_DIR/temporal-v1.5.1) */
export function temporalCacheDir(): string {
  const base =
    process.env.SITEFLEET_CACHE_DIR ?? join(process.env.XDG_CACHE_HOME ?? join(homedir(), '.cache'), 'sitefleet');
  return join(base, `temporal-${TEMPORAL_CLI_VERSION}`);
}

function isExecutable(path: string): boolean {
  try {
    accessSync(path, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

function onPath(name: string): string | undefined {
  for (const dir of (process.env.PATH ?? '').split(delimiter)) {
    if (dir && isExecutable(join(dir, name))) return join(dir, name);
  }
  return undefined;
}

/** The path of a usable `temporal` binary, or undefined when none is present yet. */
export function findTemporalCli(): string | undefined {
  const fromEnv = process.env.SITEFLEET_TEMPORAL_BIN;
  if (fromEnv) {
    if (!isExecutable(fromEnv)) throw new Error(`SITEFLEET_TEMPORAL_BIN=${fromEnv} is not an executable file`);
    return fromEnv;
  }
  const cached = join(temporalCacheDir(), 'temporal');
  if (isExecutable(cached)) return cached;
  return onPath('temporal');
}

function goBinary(): string | undefined {
  return onPath('go') ?? (isExecutable('/usr/local/go/bin/go') ? '/usr/local/go/bin/go' : undefined);
}

/** Finds the CLI, installing it with Go when it is missing. Throws a message that says exactly what to do. */
export async function ensureTemporalCli(log: (line: string) => void = console.log): Promise<string> {
  const found = findTemporalCli();
  if (found) return found;
  const go = goBinary();
  const dir = temporalCacheDir();
  if (!go) {
    throw new Error(
      [
        'The Temporal CLI (dev server and Web UI) is not installed and Go is not available to build it.',
        'Do one of:',
        `  - install Go (https://go.dev/dl/ or "apt-get install golang"), then run "npm run setup";`,
        '  - put a temporal binary on PATH, or set SITEFLEET_TEMPORAL_BIN=/path/to/temporal;',
        '  - or point sitefleet at a running server with TEMPORAL_ADDRESS=host:7233.',
      ].join('\n'),
    );
  }
  mkdirSync(dir, { recursive: true });
  log(`Installing the Temporal CLI ${TEMPORAL_CLI_VERSION} with go install into ${dir} (takes a few minutes, once)...`);
  const started = Date.now();
  await run(go, ['install', `github.com/temporalio/cli/cmd/temporal@${TEMPORAL_CLI_VERSION}`], {
    env: { ...process.env, GOBIN: dir, GOFLAGS: '-mod=mod' },
    maxBuffer: 64 * 1024 * 1024,
  });
  const path = join(dir, 'temporal');
  if (!isExecutable(path)) throw new Error(`go install finished but ${path} is missing`);
  log(`Installed ${path} in ${Math.round((Date.now() - started) / 1000)} s`);
  return path;
}

/** The version line the binary prints, for diagnostics. */
export function temporalCliVersion(path: string): string {
  const out = spawnSync(path, ['--version'], { encoding: 'utf8' });
  return (out.stdout || out.stderr).trim();
}
