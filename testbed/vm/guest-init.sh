#!/bin/bash
# PID 1 of a VM test host (after the initramfs, see initramfs-init.sh). Like host-init.sh for a
# namespace host: it brings up the host's network and sshd, then reaps. As a real server would at
# boot, it starts rpcbind and statd and mounts the NFS lines of /etc/fstab (in the background, with
# their own timeouts, so boot never waits on a share). Every other daemon is started by the
# controller over ssh, as on namespace hosts. SIGTERM (testbed `reboot`/`stop-host`) ends the
# daemons, unmounts the shares, syncs and resets; QEMU runs with -no-reboot, so it exits.
set -u
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
name=; ip=
for arg in $(cat /proc/cmdline); do
  case "$arg" in
    sf.name=*) name="${arg#sf.name=}" ;;
    sf.ip=*) ip="${arg#sf.ip=}" ;;
  esac
done
mount -t tmpfs -o mode=0755 tmpfs /run
mount -t tmpfs -o mode=1777 tmpfs /tmp
mkdir -p /dev/pts /dev/shm /run/lock /run/sshd
mount -t devpts -o gid=5,mode=620 devpts /dev/pts
mount -t tmpfs tmpfs /dev/shm
mount -t nfsd nfsd /proc/fs/nfsd 2>/dev/null || true
hostname "$name"
ip link set lo up
ip addr add "$ip" dev eth0
ip link set eth0 up
rm -f /etc/ssh/ssh_host_rsa_key /etc/ssh/ssh_host_rsa_key.pub /etc/ssh/ssh_host_ecdsa_key /etc/ssh/ssh_host_ecdsa_key.pub
if [ -e /usr/sbin/policy-rc.d ]; then mount --bind /dev/null /usr/sbin/policy-rc.d; fi
exec </dev/null >/dev/console 2>&1
rpcbind -w
rpc.statd --no-notify
/usr/sbin/sshd
( mount -a -t nfs,nfs4 ) &
echo "sitefleet guest $name up"

shutdown() {
  kill -TERM -1 2>/dev/null
  sleep 1
  kill -KILL -1 2>/dev/null
  umount -a -f -l -t nfs,nfs4 2>/dev/null
  sync
  echo u >/proc/sysrq-trigger
  echo b >/proc/sysrq-trigger
}
trap shutdown TERM
while :; do
  sleep 3600 &
  wait || true
done
