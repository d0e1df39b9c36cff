/**
 * The shell scripts a relay runs on the members (POSIX sh, coreutils, findutils, tar, OpenSSH, rsync). Every
 * value reaches them as an argument (quoted by quoteArgs) or on stdin, never spliced into the script text, except
 * the staging path in the receive script, which relay.ts checks to be made of safe characters only.
 *
 * A member's staging directory S (`PLATFORMS/.sitefleet-relay-PLATFORM`, beside the platform so that renames are
 * atomic) is the aegir user's, mode 0700:
 *   tree/         what the member unpacks; renamed into place once verified
 *   in.fifo       the stream from the previous member (written by the receive command)
 *   unpack.fifo   tee's copy of the stream for tar
 *   key key.pub   this operation's relay key (generated here; the private half never leaves the member)
 *   known_hosts   the other members' host keys, pinned from the inventory
 *   receive       the forced command of the previous member's key
 */

/** The only command a relay key may run on the receiving member; anything else is refused. */
export const RECEIVE_COMMAND = 'sitefleet-relay-receive';

/** Records of the relay's tar stream, in 512-byte blocks: 64 KiB, the size of a pipe's buffer. */
export const RELAY_BLOCKING_FACTOR = 128;

/** Exit code of the scripts when the member cannot take part (a missing tool, a mount inside the platform...). */
export const UNSUPPORTED_EXIT = 3;
/** Exit code of the verify-and-switch script when what arrived is not what the controller sent. */
export const VERIFY_FAILED_EXIT = 4;

/**
 * prepare (root). Args: S live user comment deadline-seconds ADDR... ; stdin: known_hosts lines (every member's
 * pinned host key under its alias). Creates S afresh, the fifos, this operation's key, the receive command, and
 * prints `key=value` lines: existed, zstd, group, home, pubkey, route=ADDR SOURCE for each other member's address.
 */
export const PREPARE_SCRIPT = `set -eu
S=$1 live=$2 user=$3 comment=$4 limit=$5
shift 5
fail() { echo "sitefleet relay: $*" >&2; exit ${UNSUPPORTED_EXIT}; }
id -u "$user" >/dev/null 2>&1 || fail "there is no user $user"
group=$(id -gn "$user")
home=$(getent passwd "$user" | cut -d: -f6)
[ -n "$home" ] && [ -d "$home" ] || fail "user $user has no home directory"
for tool in tar tee ssh ssh-keygen rsync mkfifo setpriv find sort sed cmp xargs gzip cp timeout; do
  command -v "$tool" >/dev/null 2>&1 || fail "$tool is not installed"
done
if [ -e "$live" ] || [ -L "$live" ]; then
  { [ -d "$live" ] && [ ! -L "$live" ]; } || fail "$live is not a directory"
  echo existed=yes
  if mountpoint -q -- "$live" 2>/dev/null; then fail "$live is a mount point: it cannot be switched by a rename"; fi
  if awk -v p="$live/" 'index($5, p) == 1 { found = 1 } END { exit !found }' /proc/self/mountinfo; then
    fail "a filesystem is mounted below $live: it cannot be switched by a rename"
  fi
else
  echo existed=no
fi
parent=\${S%/*}
[ -d "$parent" ] || mkdir -p -- "$parent"
# Leftovers of an earlier relay of this platform: its processes, then its directory.
if [ -d "$S" ]; then
  for f in "$S"/*.pid; do
    [ -f "$f" ] || continue
    pid=$(cat -- "$f" 2>/dev/null || true)
    case $pid in ''|*[!0-9]*) continue ;; esac
    # Only the user's own relay processes, whose command line names this staging directory.
    [ "$(stat -c %U "/proc/$pid" 2>/dev/null)" = "$user" ] || continue
    if tr '\\0' ' ' < "/proc/$pid/cmdline" 2>/dev/null | grep -qF -- "$S"; then kill -TERM -- "$pid" 2>/dev/null || true; fi
  done
  rm -rf -- "$S"
fi
install -d -o "$user" -g "$group" -m 0700 -- "$S"
cd "$S"
umask 077
mkdir tree
mkfifo in.fifo unpack.fifo
ssh-keygen -q -t ed25519 -N '' -C "$comment" -f key
cat > known_hosts
chown "$user:$group" tree in.fifo unpack.fifo key key.pub known_hosts
umask 022
cat > receive <<EOF
#!/bin/sh
# sitefleet relay: the forced command of the relay key; it runs nothing but this.
[ "\\\${SSH_ORIGINAL_COMMAND:-}" = ${RECEIVE_COMMAND} ] || { echo "sitefleet relay: refused: this key may only send a platform stream" >&2; exit 1; }
echo \\$\\$ > '$S/receive.pid'
exec timeout -k 5 $limit sh -c 'exec cat > "\\$1"' sitefleet-relay-receive '$S/in.fifo'
EOF
chmod 0755 receive
[ -d "$home/.ssh" ] || install -d -o "$user" -g "$group" -m 0700 -- "$home/.ssh"
if command -v zstd >/dev/null 2>&1; then echo zstd=yes; else echo zstd=no; fi
echo "group=$group"
echo "home=$home"
echo "pubkey=$(cat key.pub)"
# One ip for every address (a process per address costs, on every member, on the critical path).
if [ $# -gt 0 ]; then
  printf 'route get %s\\n' "$@" | ip -o -force -batch - 2>/dev/null |
    sed -n 's/^\\(local \\|unicast \\|broadcast \\)\\{0,1\\}\\([^ ]*\\) .* src \\([^ ]*\\).*/route=\\2 \\3/p' || true
fi
`;

/**
 * The node's splitter, when perl is there (Debian's perl-base always is): stdin to this member's tar (the file
 * named by the argument) and to stdout (the next member), 1 MiB at a time through 1 MiB pipes. tee does the same
 * with 8 KiB reads, which on a 2-core machine costs a context switch every few KiB. Like `tee -p`, it keeps feeding
 * one side when the other goes away (EPIPE). No single quotes: it travels inside the node script's.
 */
export const SPLITTER_PERL = [
  'use strict; $SIG{PIPE} = "IGNORE"; my $size = 1 << 20;',
  'open(my $unpack, ">", $ARGV[0]) or die "sitefleet relay: $ARGV[0]: $!\\n";',
  'for my $fh (\\*STDIN, $unpack, \\*STDOUT) { fcntl($fh, 1031, $size); }',
  'my @out = ([$unpack, 1], [\\*STDOUT, 1]); my ($buf, $n);',
  'while ($n = sysread(STDIN, $buf, $size)) {',
  '  for my $o (@out) { my $off = 0;',
  '    while ($o->[1] && $off < $n) { my $w = syswrite($o->[0], $buf, $n - $off, $off); if (defined $w) { $off += $w } else { $o->[1] = 0 } } } }',
  'die "sitefleet relay: reading the stream: $!\\n" unless defined $n;',
].join(' ');

/**
 * node (the aegir user). Args: S input compression [ssh argv to the next member...]; input is `stdin` (the first
 * member: the controller's stream) or `fifo` (in.fifo, fed by the receive command); compression is `zstd` or `none`
 * (the stream is passed on as it came, compressed or not). Unpacks into tree/ and, when there is a
 * next member, passes the same stream on. `tee -p` keeps unpacking here when the next member goes away, and keeps
 * passing on when this member's tar fails. Prints one line: `sitefleet-relay tar=N tee=N next=N`.
 */
export const NODE_SCRIPT = `set -u
S=$1 input=$2 compression=$3
shift 3
cd "$S" || exit 90
echo $$ > node.pid
untar() {
  set -- --file="$1"
  [ "$compression" != zstd ] || set -- "$@" --use-compress-program=zstd
  tar --extract --blocking-factor=${RELAY_BLOCKING_FACTOR} --read-full-records --directory=tree --preserve-permissions \\
    --no-same-owner --delay-directory-restore --warning=no-timestamp --warning=no-unknown-keyword "$@"
}
if [ $# -eq 0 ]; then
  if [ "$input" = stdin ]; then untar -; else untar - < in.fifo; fi
  echo "sitefleet-relay tar=$? tee=- next=-"
  exit 0
fi
untar unpack.fifo &
tarpid=$!
exec 3<&0
split() {
  if command -v perl >/dev/null 2>&1; then perl -e '${SPLITTER_PERL}' unpack.fifo; else tee -p unpack.fifo; fi
}
{
  if [ "$input" = stdin ]; then split <&3; else split < in.fifo; fi
  echo $? > tee.rc
} | {
  exec 4<&0
  "$@" <&4 >/dev/null &
  echo $! > next.pid
  wait $!
  echo $? > next.rc
}
wait $tarpid
tarrc=$?
echo "sitefleet-relay tar=$tarrc tee=$(cat tee.rc 2>/dev/null || echo '?') next=$(cat next.rc 2>/dev/null || echo '?')"
`;

/**
 * verify and switch (root). Args: S live user digest (`openssl` or `sha256sum`: the tool that checks contents);
 * then the platform push's rsync filter arguments. Stdin: the
 * manifest's records, gzipped (see relay-manifest.ts). Checks every path, type, mode, size, mtime and link target
 * of tree/, then every file's sha256; only then puts tree/ in place of the platform: a new platform by one rename,
 * an existing one by building the next version beside it (hard links of the live tree, then rsync from tree/ with
 * the push's filters and --delete, so that sites, uploads and wp-config.php stay exactly as a push keeps them) and
 * exchanging the two directories in one renameat2(RENAME_EXCHANGE). The previous version is removed afterwards.
 * Prints `sitefleet-relay switched=exchange|rename`.
 */
export const VERIFY_AND_SWITCH_SCRIPT = `set -eu
S=$1 live=$2 user=$3 digest=$4
shift 4
fail() { echo "sitefleet relay: $*" >&2; exit ${VERIFY_FAILED_EXIT}; }
cd "$S"
[ -d tree ] || fail "nothing was unpacked"
gzip -dc > expected
export LC_ALL=C
( cd tree && find . \\( -type f -printf 'f %m %s %T@ %P\\0' \\) -o \\( -type d -printf 'd %m %P\\0' \\) \\
    -o \\( -type l -printf 'l %s %l %T@ %P\\0' \\) -o -printf '? %y %P\\0' ) | sort -z > actual
sed -z 's/^\\(f [0-7]* [0-9]* [0-9.]* \\)[0-9a-f]\\{64\\} /\\1/' expected > expected.listing
if ! cmp -s expected.listing actual; then
  tr '\\0' '\\n' < expected.listing > expected.txt
  tr '\\0' '\\n' < actual > actual.txt
  echo "sitefleet relay: what arrived differs from the manifest (- expected, + found):" >&2
  diff expected.txt actual.txt | grep '^[<>]' | sed 's/^</-/; s/^>/+/' | head -n 20 >&2 || true
  exit ${VERIFY_FAILED_EXIT}
fi
# Each file's digest as the digest tool prints it, built from the manifest, byte for byte. openssl (several times
# faster: it uses the CPU's SHA instructions) prints names raw unless they hold a newline; for such names the
# controller asks for sha256sum -z, which never escapes.
if [ "$digest" = openssl ] && command -v openssl >/dev/null 2>&1; then
  sed -z -n 's/^f [0-7]* [0-9]* [0-9.]* \\([0-9a-f]\\{64\\}\\) /\\1 *.\\//p' expected | tr '\\0' '\\n' > sha256.expected
  ( cd tree && sed -z -n 's/^f [0-7]* [0-9]* [0-9.]* [0-9a-f]\\{64\\} /.\\//p' ../expected | xargs -0 -r openssl dgst -sha256 -r ) > sha256.found
else
  sed -z -n 's/^f [0-7]* [0-9]* [0-9.]* \\([0-9a-f]\\{64\\}\\) /\\1  .\\//p' expected > sha256.expected
  ( cd tree && sed -z -n 's/^f [0-7]* [0-9]* [0-9.]* [0-9a-f]\\{64\\} /.\\//p' ../expected | xargs -0 -r sha256sum -z -- ) > sha256.found
fi
if ! cmp -s sha256.expected sha256.found; then
  fail "the content of some files differs from their sha256 in the manifest"
fi
# The push gives the group named like the user; the unpacking user's primary group may be another.
if getent group "$user" >/dev/null && [ "$(id -gn "$user")" != "$user" ]; then chgrp -R -h -- "$user" tree; fi
exchange() {
  case $(uname -m) in x86_64) nr=316 ;; aarch64) nr=276 ;; *) return 1 ;; esac
  command -v perl >/dev/null 2>&1 || return 1
  perl -e 'exit(syscall(0 + $ARGV[0], -100, $ARGV[1], -100, $ARGV[2], 2) == 0 ? 0 : 1)' "$nr" "$1" "$2"
}
[ ! -L "$live" ] || fail "$live is a symbolic link, not a platform directory"
if [ -d "$live" ]; then
  cp -al -- "$live" "$S/next"
  rc=0
  rsync -a --delete --omit-dir-times "$@" --link-dest="$S/tree" "$S/tree/" "$S/next/" >/dev/null || rc=$?
  [ "$rc" -eq 0 ] || [ "$rc" -eq 24 ] || fail "could not merge the platform with what $live keeps (rsync exit $rc)"
  if exchange "$S/next" "$live"; then
    how=exchange
  else
    mv -T -- "$live" "$S/previous"
    mv -T -- "$S/next" "$live"
    how=rename
  fi
else
  mv -T -- "$S/tree" "$live"
  how=rename
fi
echo "sitefleet-relay switched=$how"
cd /
rm -rf -- "$S" || true
`;

/**
 * unblock (root). Args: S. Ends a member's wait for a stream that will never come (the previous member is gone):
 * opens in.fifo for writing and closes it, so its reader sees the end of the stream, or stops this member's own
 * forwarding (next.pid) when `stop-forwarding` is given.
 */
export const UNBLOCK_SCRIPT = `set -u
S=$1 what=$2
cd "$S" 2>/dev/null || exit 0
if [ "$what" = stop-forwarding ]; then
  pid=$(cat next.pid 2>/dev/null || true)
  case $pid in ''|*[!0-9]*) exit 0 ;; esac
  kill -TERM -- "$pid" 2>/dev/null || true
else
  timeout 5 sh -c ': > in.fifo' 2>/dev/null || true
fi
`;

/**
 * clean up (root). Args: S user. Stops what is left of the relay on this member (the user's processes that name S)
 * and removes its staging directory.
 */
export const CLEANUP_SCRIPT = `set -u
S=$1 user=$2
[ -d "$S" ] || { echo sitefleet-relay clean; exit 0; }
for f in "$S"/*.pid; do
  [ -f "$f" ] || continue
  pid=$(cat -- "$f" 2>/dev/null || true)
  case $pid in ''|*[!0-9]*) continue ;; esac
  [ "$(stat -c %U "/proc/$pid" 2>/dev/null)" = "$user" ] || continue
  if tr '\\0' ' ' < "/proc/$pid/cmdline" 2>/dev/null | grep -qF -- "$S"; then kill -TERM -- "$pid" 2>/dev/null || true; fi
done
rm -rf -- "$S"
echo sitefleet-relay removed
`;
