/**
 * php-fpm on a web server: a graceful reload, so that PHP's opcache and realpath cache start cold. After a code
 * change behind a symlink that the web server does not resolve per request (Apache passes the symlinked path to
 * PHP), opcache (validate_timestamps with revalidate_freq, Debian's default) and the realpath cache would keep
 * serving the old code for seconds: a probe right after the change must see the new code.
 */
import { serverSchema, type Server } from '../domain/model';
import { activityCancellationSignal } from './support/activity-context';
import { parseInput } from './support/activity-input';
import { badInput, FailureType, permanentFailure, transientFailure } from '../common/failures';
import { runRemote } from './transport/ssh-command';

/**
 * Finds the php-fpm service on the server itself (named like its socket, php8.2-fpm.sock -> php8.2-fpm, else the
 * only php*-fpm init script), reloads it with systemctl where systemd runs and with its init script elsewhere, and
 * waits (up to 10 s) until every child of the master is a new one: the old children finish their request first
 * (SIGQUIT from the master), so callers reload members that are drained.
 */
const RELOAD_PHP_FPM = `set -u
sock=$1
name=$(basename "$sock" .sock)
case "$name" in
  php*-fpm) [ -e "/etc/init.d/$name" ] || [ -d /run/systemd/system ] || name= ;;
  *) name= ;;
esac
if [ -z "$name" ]; then
  set -- /etc/init.d/php*-fpm
  [ $# -eq 1 ] && [ -e "$1" ] || { echo "no single php-fpm service for $sock: $*" >&2; exit 3; }
  name=$(basename "$1")
fi
pidfile=/run/php/$name.pid
children() { master=$(cat "$pidfile" 2>/dev/null) && [ -n "$master" ] && ps -o pid= --ppid "$master" 2>/dev/null | awk '{print $1}'; }
before=" $(children | tr '\\n' ' ') "
if [ -d /run/systemd/system ]; then systemctl reload "$name" >&2 || exit 1
else service "$name" reload >&2 || exit 1
fi
i=0
while [ $i -lt 100 ]; do
  sleep 0.1
  now=$(children)
  old=no
  for p in $now; do case "$before" in *" $p "*) old=yes ;; esac; done
  if [ $old = no ] && [ -S "$sock" ]; then echo "reloaded $name"; exit 0; fi
  i=$((i + 1))
done
echo "$name: old children still running after 10 s" >&2
exit 1
`;

/** Reloads php-fpm gracefully on the server and returns once only new children serve (see RELOAD_PHP_FPM). */
export async function reloadPhpFpm(input: { server: Server }): Promise<{ server: string; service: string }> {
  const signal = activityCancellationSignal();
  const server = parseInput(serverSchema, input.server, 'server');
  if (!server.http) throw badInput(`server: ${server.name} has no http service, so no php-fpm to reload`);
  const r = await runRemote(server, ['sh', '-c', RELOAD_PHP_FPM, 'sitefleet-php-reload', server.http.phpFpmSocket], {
    timeoutMs: 60_000,
    signal,
    allowExitCodes: 'any',
    describe: 'reload php-fpm',
  });
  if (r.code === 3) {
    throw permanentFailure(FailureType.ServerNotReady, `server ${server.name}: ${r.stderr.trim()}`);
  }
  if (r.code !== 0) {
    throw transientFailure(
      FailureType.RemoteCommandFailed,
      `server ${server.name}: php-fpm did not reload: ${r.stderr.trim() || r.stdout.trim() || `exit ${r.code}`}`,
    );
  }
  return { server: server.name, service: r.stdout.trim().replace(/^reloaded /, '') };
}
