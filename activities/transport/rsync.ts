/**
 * rsync from this worker to servers. rsync spawns OpenSSH, not node-ssh, so connection reuse and host key pinning
 * are set up for OpenSSH:
 *
 * - known_hosts: OpenSSH needs the full public key, not the pinned fingerprint. The key is taken from the pooled
 *   node-ssh connection, whose host verifier has just checked that its SHA256 fingerprint is the pinned one, and
 *   written to a per-server known_hosts file (alias `sitefleet-NAME`) used with StrictHostKeyChecking=yes.
 * - reuse: one OpenSSH ControlMaster per server (ControlPersist 60 s), started explicitly with its output in a log
 *   file, in a directory this worker process owns; every rsync rides it as a mux client (~5 ms instead of ~120 ms
 *   to connect) and falls back to a direct, equally pinned connection if the master has gone.
 */
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { readFile, rm, writeFile, rename } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Server } from '../../domain/model';
import { abortReason, heartbeatProgress } from '../support/activity-context';
import { settleBounded } from '../../common/settle';
import { withKeyedLock } from '../support/concurrency-limits';
import { FailureType, permanentFailure, transientFailure } from '../../common/failures';
import { parseRsyncOutput, isItemizedLine, type RsyncSummary } from './rsync-output';
import { onCloseAllConnections, onForgetServer, privateKeyPathFor, verifiedHostKey } from './ssh';
import { runRemote } from './ssh-command';
import { runLocal, type LocalProcessResult } from './local-process';
import { knownHostsLine, pinnedSshOptions } from './openssh-options';
import { messageOf } from '../../common/error-message';

/** Version-control metadata never travels. */
export const VCS_EXCLUDES = ['.git/', '.svn/', '.hg/', '.bzr/', 'CVS/', '_darcs/'];

/** How long an OpenSSH master stays up after its last rsync. @default 60 s */
const CONTROL_PERSIST_SECONDS = 60;
/** rsync gives up when no data moves for this long (a cut link). */
const IO_TIMEOUT_SECONDS = 60;
/** A heartbeat at least this often while rsync runs, even when it prints nothing (one big file). */
const HEARTBEAT_INTERVAL_MS = 5_000;
/**
 * A master seen alive this recently is used without asking it again (`ssh -O check` costs a process spawn). Well
 * under ControlPersist, whose clock restarts at every use; if the master has gone anyway, the rsync's own ssh
 * connects directly with the same pinned options.
 */
const MASTER_FRESH_MS = 20_000;

let controlDir: string | undefined;
const masters = new Map<string, { server: Server; options: string[]; seenAt: number }>();
/** Servers whose remote rsync does not know --mkpath (older than 3.2.3): their destination is made with mkdir. */
const noMkpath = new Set<string>();

const CONTROL_DIR_PREFIX = 'sitefleet-ssh-';

/**
 * Removes the control directories of worker processes that are gone (a SIGKILL skips the exit handler). Each
 * directory holds the PID of its process; one without (being made, or from an older version) is left alone until
 * it is an hour old.
 */
export function removeStaleControlDirs(root = tmpdir()): string[] {
  const removed: string[] = [];
  let entries: string[];
  try {
    entries = readdirSync(root).filter((e) => e.startsWith(CONTROL_DIR_PREFIX));
  } catch {
    return removed;
  }
  for (const entry of entries) {
    const dir = join(root, entry);
    try {
      const st = statSync(dir);
      if (!st.isDirectory() || st.uid !== process.getuid?.()) continue;
      let stale: boolean;
      try {
        const pid = Number(readFileSync(join(dir, 'pid'), 'utf8').trim());
        stale = !Number.isInteger(pid) || pid <= 0 || (pid !== process.pid && !processAlive(pid));
      } catch {
        stale = Date.now() - st.mtimeMs > 3600_000;
      }
      if (stale) {
        rmSync(dir, { recursive: true, force: true });
        removed.push(dir);
      }
    } catch {
      // gone meanwhile, or not ours
    }
  }
  return removed;
}

function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** A directory only this worker process uses, for control sockets and known_hosts files (short: sockets ≤ 104 bytes). */
function ownControlDir(): string {
  if (!controlDir) {
    removeStaleControlDirs();
    const dir = mkdtempSync(join(tmpdir(), CONTROL_DIR_PREFIX));
    writeFileSync(join(dir, 'pid'), `${process.pid}\n`, { mode: 0o600 });
    controlDir = dir;
    onCloseAllConnections(closeMasters);
    onForgetServer(closeMaster);
    // A worker that exits without closeAllConnections still leaves nothing behind (its masters time out alone).
    process.once('exit', () => rmSync(dir, { recursive: true, force: true }));
  }
  return controlDir;
}

/** Stops the control master of one server and forgets its pinned key file (its host key no longer matches). */
async function closeMaster(serverName: string): Promise<void> {
  const dir = controlDir;
  const known = masters.get(serverName);
  masters.delete(serverName);
  if (known) {
    await runLocal([
      'ssh',
      ...known.options,
      '-O',
      'exit',
      '-o',
      `Hostname=${known.server.host}`,
      hostAlias(known.server),
    ]).catch(() => undefined);
  }
  if (dir) await rm(join(dir, `known_hosts-${serverName}`), { force: true });
}

function hostAlias(server: Server): string {
  return `sitefleet-${server.name}`;
}

/** OpenSSH options that pin the host key and share one connection per server. All free of spaces (see -e). */
async function opensshOptions(server: Server): Promise<string[]> {
  const dir = ownControlDir();
  const key = await verifiedHostKey(server);
  const knownHosts = join(dir, `known_hosts-${server.name}`);
  const line = knownHostsLine(hostAlias(server), key);
  const existing = await readFile(knownHosts, 'utf8').catch(() => null);
  if (existing !== line) {
    await writeFile(`${knownHosts}.tmp`, line, { mode: 0o600 });
    await rename(`${knownHosts}.tmp`, knownHosts);
  }
  return pinnedSshOptions(
    {
      port: server.ssh.port,
      user: server.ssh.user,
      identityFile: await privateKeyPathFor(server),
      knownHostsFile: knownHosts,
      hostKeyAlias: hostAlias(server),
      hostKeyType: key.type,
    },
    { controlPath: join(dir, 'cm-%C') },
  );
}

function classifySshError(server: Server, stderr: string, what: string): Error {
  const text = stderr.trim() || '(no output)';
  if (/Host key verification failed|REMOTE HOST IDENTIFICATION HAS CHANGED/i.test(text)) {
    // OpenSSH's banner points at this worker's private known_hosts file; say it in sitefleet's words instead.
    return permanentFailure(
      FailureType.HostKeyMismatch,
      `server ${server.name} (${server.host}:${server.ssh.port}): host key mismatch during ${what}: expected ` +
        `${server.ssh.hostKey} (pinned), but the server presented another key. Nothing more was sent to it. ` +
        `Compare with the key on its console (\`ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub\`); if the new key ` +
        `is the right one, re-pin it: \`sitefleet server repin ${server.name}\`.`,
      { server: server.name, host: server.host, pinned: server.ssh.hostKey },
    );
  }
  if (/Permission denied/i.test(text)) {
    return permanentFailure(
      FailureType.SshAuthenticationFailed,
      `server ${server.name}: ${server.ssh.user}@${server.host} refused the worker's key during ${what}: ${text}`,
    );
  }
  return transientFailure(FailureType.HostUnreachable, `server ${server.name}: ${what} could not connect: ${text}`, {
    server: server.name,
  });
}

/** Starts (or finds) the OpenSSH control master of `server`; returns the ssh options that use it. */
async function ensureMaster(server: Server, signal?: AbortSignal): Promise<string[]> {
  const options = await opensshOptions(server);
  const target = hostAlias(server);
  return withKeyedLock(`ssh-master|${server.name}`, async () => {
    const known = masters.get(server.name);
    if (known && known.options.join(' ') === options.join(' ') && Date.now() - known.seenAt < MASTER_FRESH_MS) {
      known.seenAt = Date.now();
      return options;
    }
    const check = await runLocal(['ssh', ...options, '-O', 'check', '-o', `Hostname=${server.host}`, target]);
    if (check.code === 0) {
      masters.set(server.name, { server, options, seenAt: Date.now() });
      return options;
    }
    const log = join(ownControlDir(), `master-${server.name}.log`);
    const started = await runLocal(
      [
        'ssh',
        ...options,
        '-o',
        'ControlMaster=yes',
        '-o',
        `ControlPersist=${CONTROL_PERSIST_SECONDS}`,
        '-o',
        `Hostname=${server.host}`,
        '-N',
        '-f',
        target,
      ],
      { signal, stderrFile: log },
    );
    if (started.code !== 0) {
      throw classifySshError(server, await readFile(log, 'utf8').catch(() => ''), 'the ssh control master');
    }
    masters.set(server.name, { server, options, seenAt: Date.now() });
    return options;
  });
}

async function closeMasters(): Promise<void> {
  const dir = controlDir;
  const running = [...masters.values()];
  masters.clear();
  await Promise.allSettled(
    running.map(({ server, options }) =>
      runLocal(['ssh', ...options, '-O', 'exit', '-o', `Hostname=${server.host}`, hostAlias(server)]),
    ),
  );
  if (dir) await rm(dir, { recursive: true, force: true });
  controlDir = undefined;
}

export interface RsyncSpec {
  /** A directory on this worker; its contents are copied (a trailing slash is added). */
  source: string;
  /** The directory on the server that receives them (created if missing). */
  destination: string;
  /** rsync filter rules in order, such as `- .git/` or `P /sites/`. */
  filters?: readonly string[];
  /** Remove files on the server that the source does not have (excluded and protected files stay). @default true */
  delete?: boolean;
  /** Report what would change, change nothing. @default false */
  dryRun?: boolean;
  /** Owner `user:group` given to every file on the server (needs root there, directly or through sudo). */
  chown?: string;
  /** Permission changes applied on the server, in rsync `--chmod` syntax (e.g. `go+rX,go-w`). */
  chmod?: string;
  /** @default 30 minutes */
  timeoutMs?: number;
  signal?: AbortSignal;
}

/**
 * Copies `spec.source` to `spec.destination` on `server` with rsync over a reused, pinned OpenSSH connection,
 * heartbeating progress. Returns the parsed `--itemize-changes --stats` summary.
 */
export async function rsyncToServer(server: Server, spec: RsyncSpec): Promise<RsyncSummary> {
  const signal = spec.signal;
  if (signal?.aborted) throw abortReason(signal);
  const dryRun = spec.dryRun ?? false;
  const mkdirFirst = !dryRun && noMkpath.has(server.name);
  if (mkdirFirst) {
    await runRemote(server, ['mkdir', '-p', '--', spec.destination], { timeoutMs: 30_000, signal });
  }
  const options = await ensureMaster(server, signal);
  const result = await runRsync(server, spec, options, !dryRun && !mkdirFirst);
  if (!dryRun && !mkdirFirst && refusedMkpath(result)) {
    // An rsync older than 3.2.3 on the server: remember it, make the destination the old way and go again.
    noMkpath.add(server.name);
    return rsyncToServer(server, spec);
  }
  return summarize(server, spec, result, dryRun);
}

/** The server's rsync did not know --mkpath (it prints the option it refused). */
function refusedMkpath(result: LocalProcessResult): boolean {
  return (
    result.code !== 0 && /--mkpath/.test(result.stderr) && /unknown option|unrecognized option/i.test(result.stderr)
  );
}

/** Runs one rsync (the destination's missing parents made by rsync itself with `mkpath`), heartbeating progress. */
async function runRsync(
  server: Server,
  spec: RsyncSpec,
  options: string[],
  mkpath: boolean,
): Promise<LocalProcessResult> {
  const signal = spec.signal;
  const dryRun = spec.dryRun ?? false;
  const sudo = server.ssh.user === 'root' ? [] : ['--rsync-path=sudo -n rsync'];
  const argv = [
    'rsync',
    '--archive',
    '--omit-dir-times',
    '--itemize-changes',
    '--stats',
    '--no-human-readable',
    `--timeout=${IO_TIMEOUT_SECONDS}`,
    ...(spec.delete === false ? [] : ['--delete']),
    ...(dryRun ? ['--dry-run'] : []),
    ...(mkpath ? ['--mkpath'] : []),
    ...(spec.chown ? [`--chown=${spec.chown}`] : []),
    ...(spec.chmod ? [`--chmod=${spec.chmod}`] : []),
    ...VCS_EXCLUDES.map((p) => `--filter=- ${p}`),
    ...(spec.filters ?? []).map((rule) => `--filter=${rule}`),
    ...sudo,
    '-e',
    ['ssh', ...options, '-o', 'ControlMaster=no', '-o', `Hostname=${server.host}`].join(' '),
    `${spec.source.replace(/\/+$/, '')}/`,
    `${hostAlias(server)}:${spec.destination.replace(/\/+$/, '')}/`,
  ];

  let items = 0;
  let lastLine = '';
  const beat = (): void => heartbeatProgress({ server: server.name, items, last: lastLine });
  const ticker = setInterval(beat, HEARTBEAT_INTERVAL_MS);
  const timeoutMs = spec.timeoutMs ?? 30 * 60_000;
  const deadline = new AbortController();
  const timer = setTimeout(() => deadline.abort(), timeoutMs);
  const onAbort = (): void => deadline.abort();
  signal?.addEventListener('abort', onAbort, { once: true });
  try {
    return await runLocal(argv, {
      signal: deadline.signal,
      onStdoutLine: (line) => {
        if (!isItemizedLine(line)) return;
        items++;
        lastLine = line;
        if (items % 200 === 0) beat();
      },
    });
  } catch (err) {
    if (signal?.aborted) throw abortReason(signal);
    if (deadline.signal.aborted) {
      throw transientFailure(
        FailureType.RemoteCommandTimeout,
        `server ${server.name}: rsync to ${spec.destination} did not finish within ${Math.round(timeoutMs / 1000)} s`,
      );
    }
    throw err;
  } finally {
    clearInterval(ticker);
    clearTimeout(timer);
    signal?.removeEventListener('abort', onAbort);
  }
}

function summarize(server: Server, spec: RsyncSpec, result: LocalProcessResult, dryRun: boolean): RsyncSummary {
  // 24: some source files vanished while being copied (a live tree); the copy is otherwise complete.
  if (result.code === 0 || result.code === 24) return parseRsyncOutput(result.stdout, dryRun);
  const stderr = result.stderr.trim();
  const where = `rsync to ${server.name}:${spec.destination}`;
  if (/rsync: (command )?not found|rsync: No such file/i.test(stderr) && result.code === 127) {
    throw permanentFailure(
      FailureType.RsyncFailed,
      `server ${server.name} has no rsync: install it (apt-get install rsync), then retry`,
    );
  }
  if (result.code === 255 || /connection unexpectedly closed|Connection (refused|reset|timed out)/i.test(stderr)) {
    throw classifySshError(server, stderr, where);
  }
  if (result.code === 1 || result.code === 2 || result.code === 4) {
    throw permanentFailure(FailureType.RsyncFailed, `${where} was refused (exit ${result.code}): ${stderr}`);
  }
  if (result.code === 3 && /change_dir .* failed|No such file or directory/.test(stderr)) {
    throw permanentFailure(
      FailureType.BadInput,
      `${where}: source ${spec.source} is not a readable directory: ${stderr}`,
    );
  }
  throw transientFailure(
    FailureType.RsyncFailed,
    `${where} failed (exit ${result.code ?? result.signal}): ${stderr.slice(-2000) || '(no output)'}`,
    { server: server.name, code: result.code },
  );
}

export type RsyncHostResult =
  | { server: string; ok: true; summary: RsyncSummary }
  | { server: string; ok: false; error: string; type: string | null; retryable: boolean };

/**
 * One push per server, at most `maxParallel` at once (`push` is typically {@link rsyncToServer} plus whatever
 * belongs with it). Every server gets its own result: one that fails neither stops nor hides the others.
 */
export async function rsyncToServers(
  servers: readonly Server[],
  push: (server: Server) => Promise<RsyncSummary>,
  maxParallel: number,
): Promise<RsyncHostResult[]> {
  const settled = await settleBounded(servers, maxParallel, push);
  return settled.map((s, i): RsyncHostResult => {
    const server = (servers[i] as Server).name;
    if (s.ok) return { server, ok: true, summary: s.value };
    const err = s.error as { type?: string; nonRetryable?: boolean };
    return {
      server,
      ok: false,
      error: messageOf(s.error),
      type: err.type ?? null,
      retryable: err.nonRetryable !== true,
    };
  });
}
