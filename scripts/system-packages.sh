#!/usr/bin/env bash
# Installs the Debian packages sitefleet's tests and demo need, when any is missing: the test-host bed (sshd, web
# servers, PHP, MariaDB, NFS server and client tools, sshfs, haproxy and socat for its admin socket), Debian's
# WordPress tree as a realistic platform, PostgreSQL for the inventory tests, Chromium for the health page test, and QEMU plus the NFS client
# tools for the VM test hosts (their kernel, busybox and nfsd .debs are downloaded, not installed: testbed/vm).
# Used by .ci/run and by `npm test` (pretest). Needs root on Debian; elsewhere it says what is missing.
set -euo pipefail
packages=(
  openssh-server openssh-client rsync iproute2 procps psmisc curl ca-certificates sudo
  nginx apache2 php8.2-fpm php8.2-mysql php8.2-cli mariadb-server mariadb-client
  nfs-ganesha nfs-ganesha-vfs rpcbind libnfs-utils sshfs fuse3 haproxy socat wordpress chromium postgresql
  qemu-system-x86 nfs-common e2fsprogs
)
if ! command -v dpkg-query >/dev/null; then
  echo "system packages: not a Debian system; install the equivalents of: ${packages[*]}" >&2
  exit 0
fi
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" != 0 ]; then
  echo "system packages missing (run as root: apt-get install ${missing[*]})" >&2
  exit 1
fi
echo "system packages: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
# Daemons run inside test hosts only, never started by apt in the root namespace.
if [ ! -e /usr/sbin/policy-rc.d ]; then printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d; chmod 755 /usr/sbin/policy-rc.d; fi
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
