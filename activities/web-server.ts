/**
 * The web server of one server (nginx or Apache): its config test, its graceful reload, and the main include of
 * sitefleet's vhost directory (Aegir's `server_NAME/{nginx,apache}/vhost.d`). Software is detected on the server
 * itself, never on the controller.
 */
import type { Server } from '../domain/model';
import { vhostDir } from '../domain/paths';
import { activityAttempt, activityCancellationSignal } from './support/activity-context';
import { parseInput } from './support/activity-input';
import { withKeyedLock } from './support/concurrency-limits';
import { badInput, FailureType, permanentFailure, transientFailure } from '../common/failures';
import { removeRemoteFile, writeRemoteFile } from './transport/remote-file';
import { renderServerInclude } from './render';
import { runRemote } from './transport/ssh-command';
import { serverSchema } from '../domain/model';

/** @default 60 s: config tests and reloads of large configs take a while. */
const WEB_COMMAND_TIMEOUT_MS = 60_000;

/** Where the main include of the vhost directory goes, by web server (Debian's layout). */
const SERVER_INCLUDE = {
  nginx: { path: '/etc/nginx/conf.d/sitefleet.conf', enabledLink: null, searchDir: '/etc/nginx' },
  apache: {
    path: '/etc/apache2/conf-available/sitefleet.conf',
    enabledLink: '/etc/apache2/conf-enabled/sitefleet.conf',
    searchDir: '/etc/apache2',
  },
} as const;

export type WebServerType = 'nginx' | 'apache';

/** The server's web server type; BadInput when it has no http service. */
export function webServerType(server: Server): WebServerType {
  if (!server.http) throw badInput(`server ${server.name} has no http service`);
  return server.http.type;
}

export interface ConfigTestResult {
  ok: boolean;
  /** What `nginx -t` / `apachectl configtest` printed. */
  output: string;
}

/** Runs the web server's own config test (`nginx -t`, `apachectl configtest`) on the server. Changes nothing. */
export async function runConfigTest(server: Server, signal?: AbortSignal): Promise<ConfigTestResult> {
  const argv = webServerType(server) === 'nginx' ? ['nginx', '-t'] : ['apachectl', 'configtest'];
  const result = await runRemote(server, argv, { timeoutMs: WEB_COMMAND_TIMEOUT_MS, signal, allowExitCodes: 'any' });
  if (result.code === 127) {
    throw permanentFailure(
      FailureType.ServerNotReady,
      `server ${server.name}: ${argv[0]} is not installed: ${result.stderr.trim()}`,
    );
  }
  return { ok: result.code === 0, output: `${result.stderr}${result.stdout}`.trim() };
}

/**
 * Reloads gracefully and waits (up to 10 s) until the new config is live: a reload only signals the master
 * process, whose workers (nginx) or children (Apache) then change generation. Until every worker is of the new
 * generation, a new connection may still be served with the old config; callers that probe right after a change
 * must not see that. Prints `reloaded` or `started` (nginx was not running).
 */
const RELOAD_SCRIPT = `set -u
type=$1
workers() {
  if [ "$type" = nginx ]; then
    master=$(cat /run/nginx.pid 2>/dev/null) || return 0
    ps -o pid=,args= --ppid "$master" 2>/dev/null | grep 'worker process' | grep -v 'shutting down' | awk '{print $1}'
  else
    parent=$(cat /run/apache2/apache2.pid /var/run/apache2/apache2.pid 2>/dev/null | head -n 1) || return 0
    [ -n "$parent" ] && ps -o pid= --ppid "$parent" 2>/dev/null | awk '{print $1}'
  fi
}
before=" $(workers | tr '\n' ' ') "
if [ "$type" = nginx ]; then
  if ! out=$(nginx -s reload 2>&1); then
    case "$out" in
      *nginx.pid*|*"invalid PID"*|*"No such process"*) service nginx start >&2 && echo started && exit 0 ;;
    esac
    echo "$out" >&2
    exit 1
  fi
else
  apachectl graceful >&2 || exit 1
fi
i=0
while [ $i -lt 100 ]; do
  now=$(workers)
  old=no
  for p in $now; do case "$before" in *" $p "*) old=yes ;; esac; done
  if [ -n "$now" ] && [ $old = no ]; then echo reloaded; exit 0; fi
  sleep 0.1
  i=$((i + 1))
done
echo reloaded-slowly
`;

/**
 * Reloads the web server gracefully — in-flight requests finish on the old config — and returns once new
 * connections get the new one. nginx: `nginx -s reload` (started if it was not running); Apache:
 * `apachectl graceful` (which also starts a stopped server).
 */
export async function reloadWebServer(server: Server, signal?: AbortSignal): Promise<void> {
  const type = webServerType(server);
  const r = await runRemote(server, ['sh', '-c', RELOAD_SCRIPT, 'sitefleet-reload', type], {
    timeoutMs: WEB_COMMAND_TIMEOUT_MS,
    signal,
    allowExitCodes: 'any',
    describe: `reload ${type}`,
  });
  if (r.code !== 0) {
    throw transientFailure(
      FailureType.RemoteCommandFailed,
      `server ${server.name}: ${type} did not reload: ${r.stderr.trim() || r.stdout.trim() || `exit ${r.code}`}`,
    );
  }
}

/** A change waiting for its server's config test and reload (see changeWebConfig). */
interface PendingChange {
  what: string;
  change: () => Promise<{ changed: boolean; undo: () => Promise<unknown> }>;
  /** A retry reloads even when nothing changed (an earlier attempt may have written but not reloaded). */
  retry: boolean;
  signal?: AbortSignal;
  resolve: (result: { changed: boolean }) => void;
  reject: (err: unknown) => void;
}

/** Changes waiting per server; whoever holds the server's lock next takes them all. */
const pendingChanges = new Map<string, PendingChange[]>();

/**
 * Changes the web server's config safely: `change` writes files and returns how to undo itself; then the config is
 * tested; on failure the change is undone and a non-retryable ConfigTestFailed names the server and quotes the
 * test's output, and the server keeps serving its old config (it was never reloaded). On success the server is
 * reloaded when something changed, or when this is a retry (an earlier attempt may have written but not reloaded).
 *
 * Changes on one server are serialized within this worker, and the changes that queue up while a test and reload
 * run share the next test and reload (many installs at once on the same members: one `nginx -t` and one reload
 * for all of them instead of one each, which made installs wait for each other's reloads). If the shared test
 * fails, every change of the batch is undone and each is tried again alone, so that only the change that breaks
 * the config fails, with its own test output.
 */
export async function changeWebConfig<T extends { changed: boolean }>(
  server: Server,
  what: string,
  change: () => Promise<T & { undo: () => Promise<unknown> }>,
  signal?: AbortSignal,
): Promise<T> {
  const retry = activityAttempt() > 1;
  return new Promise<T>((resolve, reject) => {
    const queue = pendingChanges.get(server.name) ?? [];
    pendingChanges.set(server.name, queue);
    queue.push({ what, change, retry, signal, resolve: resolve as (r: { changed: boolean }) => void, reject });
    void withKeyedLock(`web-config|${server.name}`, async () => {
      const batch = queue.splice(0);
      if (queue.length === 0 && pendingChanges.get(server.name) === queue) pendingChanges.delete(server.name);
      if (batch.length === 1) await applyAlone(server, batch[0] as PendingChange);
      else if (batch.length > 1) await applyTogether(server, batch);
    });
  });
}

/** One change: write, test, reload (or undo and fail). Settles the change's promise; never throws. */
async function applyAlone(server: Server, p: PendingChange): Promise<void> {
  try {
    const result = await p.change();
    if (!result.changed && !p.retry) return p.resolve(result);
    const test = await runConfigTest(server, p.signal);
    if (!test.ok) {
      await result.undo();
      const after = await runConfigTest(server, p.signal);
      throw permanentFailure(
        FailureType.ConfigTestFailed,
        `server ${server.name}: ${p.what} failed the ${webServerType(server)} config test, so it was rolled back and the ` +
          `server was not reloaded (it still serves its previous config${after.ok ? '' : ', which itself does not pass the test'}). ` +
          `Test output: ${test.output}`,
        { server: server.name, output: test.output },
      );
    }
    await reloadWebServer(server, p.signal);
    p.resolve(result);
  } catch (err) {
    p.reject(err);
  }
}

/** Several changes: write all, one test, one reload; on a failed test undo all and apply each alone. */
async function applyTogether(server: Server, batch: PendingChange[]): Promise<void> {
  const applied: { p: PendingChange; result: { changed: boolean; undo: () => Promise<unknown> } }[] = [];
  try {
    for (const p of batch) {
      try {
        applied.push({ p, result: await p.change() });
      } catch (err) {
        p.reject(err);
      }
    }
    if (!applied.some((a) => a.result.changed || a.p.retry)) {
      for (const a of applied) a.p.resolve(a.result);
      return;
    }
    // No one change's cancellation signal aborts the test and reload the others share (both have a timeout).
    const test = await runConfigTest(server);
    if (test.ok) {
      await reloadWebServer(server);
      for (const a of applied) a.p.resolve(a.result);
      return;
    }
    for (const a of [...applied].reverse()) await a.result.undo();
  } catch (err) {
    for (const a of applied) a.p.reject(err);
    return;
  }
  for (const a of applied) await applyAlone(server, a.p);
}

export interface EnsureWebConfigInput {
  server: Server;
}

export interface EnsureWebConfigResult {
  server: string;
  /** The file that includes the vhost directory (sitefleet's own or one already there). */
  includedBy: string;
  changed: boolean;
}

/** Files under the web server's config dir that already include `dir`. */
async function filesIncluding(server: Server, searchDir: string, dir: string, signal?: AbortSignal): Promise<string[]> {
  const r = await runRemote(server, ['grep', '-rlsF', '--', dir, searchDir], {
    timeoutMs: 30_000,
    signal,
    allowExitCodes: [0, 1, 2],
  });
  return r.stdout.split('\n').filter((l) => l !== '');
}

/**
 * Prepares a server's web server for sitefleet: creates Aegir's config directories owned by the aegir user, makes
 * the web server include the vhost directory (unless some config already does), enables what Apache needs to pass
 * PHP to php-fpm, then tests and reloads. Idempotent.
 */
export async function ensureWebConfig(input: EnsureWebConfigInput): Promise<EnsureWebConfigResult> {
  const signal = activityCancellationSignal();
  const server = parseInput(serverSchema, input.server, 'server');
  const type = webServerType(server);
  const dir = vhostDir(server, type);
  const where = SERVER_INCLUDE[type];
  await runRemote(
    server,
    ['install', '-d', '-o', server.aegirUser, '-m', '0755', '--', dir, dir.replace(/vhost\.d$/, 'platform.d')],
    {
      timeoutMs: 30_000,
      signal,
    },
  );
  const others = (await filesIncluding(server, where.searchDir, dir, signal)).filter(
    (f) => f !== where.path && f !== where.enabledLink,
  );
  const result = await changeWebConfig(
    server,
    'the include of the vhost directory',
    async () => {
      let changed = false;
      let undo: () => Promise<unknown> = async () => undefined;
      if (others.length === 0) {
        const write = await writeRemoteFile(server, where.path, renderServerInclude(server), { mode: '0644', signal });
        changed = write.changed;
        undo = () =>
          write.previous === null
            ? removeRemoteFile(server, where.path, { signal })
            : writeRemoteFile(server, where.path, write.previous, { signal });
        if (where.enabledLink) {
          const link = await runRemote(
            server,
            [
              'sh',
              '-c',
              '[ "$(readlink -- "$2")" = "$1" ] && echo same || { ln -sfn -- "$1" "$2"; echo linked; }',
              'sitefleet-link',
              where.path,
              where.enabledLink,
            ],
            { timeoutMs: 30_000, signal },
          );
          changed ||= link.stdout.includes('linked');
        }
      }
      if (type === 'apache') changed = (await enableApacheModules(server, signal)) || changed;
      return { changed, undo, includedBy: others[0] ?? where.path };
    },
    signal,
  );
  return { server: server.name, includedBy: result.includedBy, changed: result.changed };
}

/** Enables proxy_fcgi (PHP through php-fpm) and, for https, ssl; returns true when it enabled any. */
async function enableApacheModules(server: Server, signal?: AbortSignal): Promise<boolean> {
  const wanted = ['proxy_fcgi', ...(server.http?.https ? ['ssl'] : [])];
  const loaded = await runRemote(server, ['apachectl', '-M'], {
    timeoutMs: WEB_COMMAND_TIMEOUT_MS,
    signal,
    allowExitCodes: 'any',
  });
  const missing = wanted.filter((m) => !loaded.stdout.includes(`${m}_module`));
  if (missing.length === 0) return false;
  await runRemote(server, ['a2enmod', '-q', ...missing], { timeoutMs: WEB_COMMAND_TIMEOUT_MS, signal });
  return true;
}

export interface TestWebConfigInput {
  server: Server;
}

/** The config test alone, changing nothing: `{ ok, output }` for reports. */
export async function testWebConfig(input: TestWebConfigInput): Promise<ConfigTestResult & { server: string }> {
  const signal = activityCancellationSignal();
  const server = parseInput(serverSchema, input.server, 'server');
  return { server: server.name, ...(await runConfigTest(server, signal)) };
}
