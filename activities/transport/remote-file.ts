/**
 * The one atomic file writer for servers: content goes over stdin into a temp file next to the target, which is
 * then renamed over it, so readers (nginx, mount, exportfs) see the old file or the new one, never half of one.
 * Every write and removal returns the previous content so that a compensation can put it back.
 *
 * Temp files start with a dot: the `include vhost.d/*` globs of nginx and Apache skip them.
 */
import { createHash } from 'node:crypto';
import { absolutePath, posixUser } from '../../domain/fields';
import type { Server } from '../../domain/model';
import { parseInput } from '../support/activity-input';
import { withKeyedLock } from '../support/concurrency-limits';
import { badInput, FailureType, transientFailure } from '../../common/failures';
import { runRemote } from './ssh-command';

/** @default 30 s */
const DEFAULT_TIMEOUT_MS = 30_000;
/** Exit code of the writer when the file changed since it was read (compare-and-swap lost). */
const CHANGED_UNDERNEATH = 75;

export interface RemoteFileOptions {
  /** Owner user of the written file. @default the existing file's owner, else the ssh user */
  owner?: string;
  /** Owner group of the written file. @default the existing file's group, else the ssh user's group */
  group?: string;
  /** Octal mode such as '0644'. @default the existing file's mode, else 0644 */
  mode?: string;
  /** @default 30 s */
  timeoutMs?: number;
  signal?: AbortSignal;
}

export interface RemoteFileWriteResult {
  /** The file's content before the write, or null when there was no file. */
  previous: string | null;
  /** False when the file already had this content, owner and mode (nothing was touched). */
  changed: boolean;
}

/**
 * The content is staged in the server's temp dir first, so that writing what is already there touches nothing
 * (not even the directory's mtime); only a real change creates the temp file next to the target and renames it.
 */
const WRITE_SCRIPT = `set -eu
path=$1 mode=$2 owner=$3 group=$4 expect=$5
dir=$(dirname -- "$path")
tmp=
staged=$(mktemp)
trap 'rm -f -- "$staged"; [ -z "$tmp" ] || rm -f -- "$tmp"' EXIT
cat > "$staged"
if [ -n "$expect" ]; then
  if [ -e "$path" ]; then now=$(sha256sum < "$path"); now=\${now%% *}; else now=absent; fi
  if [ "$now" != "$expect" ]; then echo "$path changed since it was read" >&2; exit ${CHANGED_UNDERNEATH}; fi
fi
if [ -e "$path" ]; then echo sitefleet:present; base64 < "$path"; else echo sitefleet:absent; fi
same=no
if [ -f "$path" ] && [ ! -L "$path" ] && cmp -s -- "$staged" "$path"; then
  same=yes
  if [ -n "$mode" ] && [ "$(stat -c %a -- "$path")" != "$mode" ]; then same=no; fi
  if [ -n "$owner" ] && [ "$(stat -c %U -- "$path")" != "$owner" ]; then same=no; fi
  if [ -n "$group" ] && [ "$(stat -c %G -- "$path")" != "$group" ]; then same=no; fi
fi
if [ "$same" = yes ]; then echo sitefleet:unchanged; exit 0; fi
[ -d "$dir" ] || mkdir -p -- "$dir"
tmp=$(mktemp -- "$dir/.sitefleet.XXXXXX")
cat -- "$staged" > "$tmp"
if [ -e "$path" ]; then
  chmod --reference="$path" -- "$tmp"
  chown --reference="$path" -- "$tmp" 2>/dev/null || true
else
  chmod 0644 -- "$tmp"
fi
[ -z "$mode" ] || chmod -- "$mode" "$tmp"
[ -z "$owner$group" ] || chown -- "$owner\${group:+:$group}" "$tmp"
mv -f -- "$tmp" "$path"
tmp=
echo sitefleet:changed
`;

const READ_SCRIPT = `set -eu
if [ -e "$1" ]; then echo sitefleet:present; base64 < "$1"; else echo sitefleet:absent; fi
`;

const REMOVE_SCRIPT = `set -eu
if [ -e "$1" ] || [ -L "$1" ]; then
  echo sitefleet:present
  if [ -f "$1" ]; then base64 < "$1"; fi
  rm -f -- "$1"
else
  echo sitefleet:absent
fi
`;

/** The sha256 of a file's bytes, or 'absent': what a compare-and-swap write expects to find. */
function contentDigest(content: Buffer | null): string {
  return content === null ? 'absent' : createHash('sha256').update(content).digest('hex');
}

function checkPath(path: string): string {
  return parseInput(absolutePath, path, 'remote file path');
}

function normalizedMode(mode: string | undefined): string {
  if (mode === undefined) return '';
  if (!/^[0-7]{3,4}$/.test(mode)) throw badInput(`file mode "${mode}" must be 3 or 4 octal digits such as 0644`);
  return parseInt(mode, 8).toString(8);
}

function checkAccount(name: string | undefined, what: string): string {
  return name === undefined ? '' : parseInput(posixUser, name, what);
}

/** Splits the writer's output: `sitefleet:present` + base64 lines | `sitefleet:absent`, then a final marker. */
function parseFileOutput(stdout: string, path: string, server: Server): { previous: Buffer | null; rest: string[] } {
  const lines = stdout.split('\n').filter((l) => l !== '');
  const [first, ...after] = lines;
  if (first === 'sitefleet:absent') return { previous: null, rest: after };
  if (first !== 'sitefleet:present') {
    throw transientFailure(FailureType.RemoteCommandFailed, `server ${server.name}: unexpected output reading ${path}`);
  }
  const markerAt = after.findIndex((l) => l.startsWith('sitefleet:'));
  const base64Lines = markerAt === -1 ? after : after.slice(0, markerAt);
  const rest = markerAt === -1 ? [] : after.slice(markerAt);
  return { previous: Buffer.from(base64Lines.join(''), 'base64'), rest };
}

interface WriteOptions extends RemoteFileOptions {
  /** Only write when the file still has this digest ({@link contentDigest}); otherwise fail with ChangedUnderneath. */
  ifDigest?: string;
}

class ChangedUnderneath extends Error {}

async function writeRaw(
  server: Server,
  path: string,
  content: string | Buffer,
  opts: WriteOptions,
): Promise<{ previous: Buffer | null; changed: boolean }> {
  const result = await runRemote(
    server,
    [
      'sh',
      '-c',
      WRITE_SCRIPT,
      'sitefleet-write',
      checkPath(path),
      normalizedMode(opts.mode),
      checkAccount(opts.owner, 'file owner'),
      checkAccount(opts.group, 'file group'),
      opts.ifDigest ?? '',
    ],
    {
      timeoutMs: opts.timeoutMs ?? DEFAULT_TIMEOUT_MS,
      stdin: content,
      signal: opts.signal,
      allowExitCodes: [0, CHANGED_UNDERNEATH],
      describe: `write ${path}`,
    },
  );
  if (result.code === CHANGED_UNDERNEATH)
    throw new ChangedUnderneath(`${path} changed on ${server.name} while being edited`);
  const { previous, rest } = parseFileOutput(result.stdout, path, server);
  return { previous, changed: rest.includes('sitefleet:changed') };
}

/**
 * Writes `content` to `path` on `server` atomically (temp file + rename, parent directories created) and returns
 * what was there before. Writing the same content, owner and mode again changes nothing.
 */
export async function writeRemoteFile(
  server: Server,
  path: string,
  content: string | Buffer,
  opts: RemoteFileOptions = {},
): Promise<RemoteFileWriteResult> {
  const { previous, changed } = await writeRaw(server, path, content, opts);
  return { previous: previous === null ? null : previous.toString('utf8'), changed };
}

async function readRaw(server: Server, path: string, opts: RemoteFileOptions): Promise<Buffer | null> {
  const result = await runRemote(server, ['sh', '-c', READ_SCRIPT, 'sitefleet-read', checkPath(path)], {
    timeoutMs: opts.timeoutMs ?? DEFAULT_TIMEOUT_MS,
    signal: opts.signal,
    describe: `read ${path}`,
  });
  return parseFileOutput(result.stdout, path, server).previous;
}

/** The content of `path` on `server`, or null when there is no such file. */
export async function readRemoteFile(
  server: Server,
  path: string,
  opts: RemoteFileOptions = {},
): Promise<string | null> {
  const raw = await readRaw(server, path, opts);
  return raw === null ? null : raw.toString('utf8');
}

/** Removes `path` on `server` and returns what it held (null when it did not exist). Idempotent. */
export async function removeRemoteFile(
  server: Server,
  path: string,
  opts: RemoteFileOptions = {},
): Promise<{ previous: string | null; removed: boolean }> {
  const result = await runRemote(server, ['sh', '-c', REMOVE_SCRIPT, 'sitefleet-remove', checkPath(path)], {
    timeoutMs: opts.timeoutMs ?? DEFAULT_TIMEOUT_MS,
    signal: opts.signal,
    describe: `remove ${path}`,
  });
  const { previous } = parseFileOutput(result.stdout, path, server);
  return { previous: previous === null ? null : previous.toString('utf8'), removed: previous !== null };
}

/**
 * Read-modify-write of a shared file (fstab, exports, authorized_keys): `edit` gets the current text (null when
 * absent) and returns the new text. The write only happens if the file is still what was read (compare-and-swap,
 * retried a few times), so two workers editing the same file never lose each other's lines.
 */
export async function editRemoteFile(
  server: Server,
  path: string,
  edit: (current: string | null) => string,
  opts: RemoteFileOptions = {},
): Promise<RemoteFileWriteResult & { content: string }> {
  return withKeyedLock(`file|${server.name}|${path}`, async () => {
    for (let attempt = 1; ; attempt++) {
      const raw = await readRaw(server, path, opts);
      const current = raw === null ? null : raw.toString('utf8');
      const next = edit(current);
      if (next === current) return { previous: current, changed: false, content: next };
      try {
        const { changed } = await writeRaw(server, path, next, { ...opts, ifDigest: contentDigest(raw) });
        return { previous: current, changed, content: next };
      } catch (err) {
        if (!(err instanceof ChangedUnderneath) || attempt >= 5) {
          if (err instanceof ChangedUnderneath) {
            throw transientFailure(FailureType.RemoteCommandFailed, `server ${server.name}: ${err.message}; try again`);
          }
          throw err;
        }
      }
    }
  });
}

export interface RemoteFileSpec {
  path: string;
  content: string | Buffer;
  /** As in {@link RemoteFileOptions}. */
  owner?: string;
  group?: string;
  mode?: string;
}

/** Per path: `sitefleet:file MODE OWNER GROUP` and the sha256 line, or `sitefleet:none` (absent, a link, not a file). */
const INSPECT_SCRIPT = `for f in "$@"; do
  if [ -f "$f" ] && [ ! -L "$f" ]; then stat -c 'sitefleet:file %a %U %G' -- "$f"; sha256sum < "$f"; else echo sitefleet:none; fi
done
`;

/**
 * Whether each file on the server already has exactly this content, owner and mode: one round trip for all.
 */
export async function inspectRemoteFiles(
  server: Server,
  files: readonly RemoteFileSpec[],
  opts: Pick<RemoteFileOptions, 'timeoutMs' | 'signal'> = {},
): Promise<boolean[]> {
  const paths = files.map((f) => checkPath(f.path));
  const result = await runRemote(server, ['sh', '-c', INSPECT_SCRIPT, 'sitefleet-inspect', ...paths], {
    timeoutMs: opts.timeoutMs ?? DEFAULT_TIMEOUT_MS,
    signal: opts.signal,
    describe: `inspect ${paths.join(', ')}`,
  });
  const lines = result.stdout.split('\n').filter((l) => l !== '');
  return files.map((file) => {
    const line = lines.shift();
    if (line === 'sitefleet:none') return false;
    const [marker, mode, owner, group] = (line ?? '').split(' ');
    const digest = (lines.shift() ?? '').split(' ')[0];
    if (marker !== 'sitefleet:file') {
      throw transientFailure(
        FailureType.RemoteCommandFailed,
        `server ${server.name}: unexpected output inspecting ${file.path}`,
      );
    }
    return (
      digest === contentDigest(Buffer.from(file.content)) &&
      (file.mode === undefined || mode === normalizedMode(file.mode)) &&
      (file.owner === undefined || owner === checkAccount(file.owner, 'file owner')) &&
      (file.group === undefined || group === checkAccount(file.group, 'file group'))
    );
  });
}

/**
 * Writes (atomically, through {@link writeRemoteFile}) the files that `inSync` (from {@link inspectRemoteFiles})
 * says differ; returns, per file, whether it was changed.
 */
export async function writeDifferingFiles(
  server: Server,
  files: readonly RemoteFileSpec[],
  inSync: readonly boolean[],
  opts: Pick<RemoteFileOptions, 'timeoutMs' | 'signal'> = {},
): Promise<boolean[]> {
  return Promise.all(
    files.map(async (file, i) => {
      if (inSync[i]) return false;
      const { owner, group, mode, content } = file;
      const write = await writeRemoteFile(server, file.path, content, { owner, group, mode, ...opts });
      return write.changed;
    }),
  );
}

/**
 * Makes files that sitefleet owns on a server have exactly this content, owner and mode, checking all of them in
 * one round trip first: in the usual case (nothing changed) that is all it costs. Only files that differ go
 * through {@link writeRemoteFile} (atomic, previous content kept). Returns, per file, whether it was changed.
 */
export async function ensureRemoteFiles(
  server: Server,
  files: readonly RemoteFileSpec[],
  opts: Pick<RemoteFileOptions, 'timeoutMs' | 'signal'> = {},
): Promise<boolean[]> {
  return writeDifferingFiles(server, files, await inspectRemoteFiles(server, files, opts), opts);
}
