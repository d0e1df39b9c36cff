#!/bin/bash
# PID 1 of one test host. Run by testbed/host.ts as
#   ip netns exec NETNS unshare --mount --uts --pid --fork --mount-proc --propagation private \
#     bash host-init.sh HOSTNAME HOST_DIR
# HOST_DIR holds the overlay upper/work dirs and the bind-mount sources the controller prepared.
# It gives the host a private /etc and /var, then stays alive as the reaper of the host's
# orphaned daemons. Killing this process (SIGKILL from the root PID namespace) ends the host.
set -euo pipefail

host_name="$1"
host_dir="$2"

# Opened before /tmp is covered by a tmpfs: HOST_DIR usually lives under /tmp.
exec 3>"$host_dir/ready"

hostname "$host_name"
mount -t overlay overlay -o "lowerdir=/etc,upperdir=$host_dir/etc.upper,workdir=$host_dir/etc.work" /etc
mount -t overlay overlay -o "lowerdir=/var,upperdir=$host_dir/var.upper,workdir=$host_dir/var.work" /var
mount --bind "$host_dir/aegir" /var/aegir
mount --bind "$host_dir/www" /var/www
mount --bind "$host_dir/log" /var/log
mount --bind "$host_dir/root" /root
# Drop this mount namespace's copies of every bed's /run/netns/* mounts: they would keep other
# beds' namespaces alive after those beds are torn down.
if mountpoint -q /run/netns; then umount --recursive --lazy /run/netns; fi
mount -t tmpfs -o mode=0755 tmpfs /run
mount -t tmpfs -o mode=1777 tmpfs /tmp
# The host serves only its own ed25519 key (in the upper dir): hide this machine's other host keys.
rm -f /etc/ssh/ssh_host_rsa_key /etc/ssh/ssh_host_rsa_key.pub /etc/ssh/ssh_host_ecdsa_key /etc/ssh/ssh_host_ecdsa_key.pub
# This machine's policy-rc.d forbids invoke-rc.d to start daemons; a real server has none.
if [ -e /usr/sbin/policy-rc.d ]; then mount --bind /dev/null /usr/sbin/policy-rc.d; fi
mkdir -p /run/sshd /run/lock
chmod 0755 /run/sshd

echo ready >&3
exec 3>&-
exec </dev/null

# The reaper: bash reaps every child that ends, including daemons re-parented to PID 1.
trap 'exit 0' TERM
while :; do
  sleep 3600 &
  wait || true
done
