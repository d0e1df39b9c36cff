#!/bin/sh
# /init of a VM test host's initramfs (static busybox). Loads the modules, mounts the guest's ext4
# disk as / with this machine's /usr, /etc and /var (shared read-only over 9p) as overlay lowers and
# their upper dirs on the disk, binds /var/aegir, /var/www and /var/log to the disk, then hands over
# to the stage-2 init (testbed/vm/guest-init.sh, read over 9p). Parameters come from the kernel
# command line: sf.hostdir=DIR (the host's dir on the controller) sf.layer=DIR (extra /usr lower).
export PATH=/bin
/bin/busybox --install -s /bin
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
# PID 1 exiting panics the kernel; with panic=-1 it resets, and QEMU (-no-reboot) exits.
fail() { echo "sitefleet initramfs: $*" >/dev/console; exit 1; }
for m in virtio_mmio virtio_blk virtio_net virtio_rng 9pnet_virtio 9p overlay crc32c_generic ext4 \
  nfs nfsv3 nfsv4 nfsd; do
  modprobe "$m" || fail "modprobe $m failed"
done
hostdir=; layer=
for arg in $(cat /proc/cmdline); do
  case "$arg" in
    sf.hostdir=*) hostdir="${arg#sf.hostdir=}" ;;
    sf.layer=*) layer="${arg#sf.layer=}" ;;
  esac
done
[ -n "$hostdir" ] || fail "no sf.hostdir= on the kernel command line"
i=0
while [ ! -b /dev/vda ]; do
  i=$((i + 1)); [ $i -gt 500 ] && fail "no /dev/vda"
  sleep 0.01
done
mount -t ext4 -o noatime /dev/vda /newroot || fail "cannot mount /dev/vda"
r=/newroot
mount -t 9p -o trans=virtio,version=9p2000.L,ro,msize=512000,cache=loose hostroot $r/.host || fail "no 9p share"
usr_lower=$r/.host/usr
[ -n "$layer" ] && usr_lower="$r/.host$layer/usr:$usr_lower"
mount -t overlay overlay -o "lowerdir=$usr_lower,upperdir=$r/.ov/usr/upper,workdir=$r/.ov/usr/work" $r/usr || fail "overlay /usr"
mount -t overlay overlay -o "lowerdir=$r/.host$hostdir/etc.upper:$r/.host/etc,upperdir=$r/.ov/etc/upper,workdir=$r/.ov/etc/work" $r/etc || fail "overlay /etc"
mount -t overlay overlay -o "lowerdir=$r/.host$hostdir/var.upper:$r/.host/var,upperdir=$r/.ov/var/upper,workdir=$r/.ov/var/work" $r/var || fail "overlay /var"
for d in aegir www log; do
  mkdir -p $r/var/$d
  mount --bind $r/.data/$d $r/var/$d || fail "bind /var/$d"
done
mount --move /proc $r/proc
mount --move /sys $r/sys
mount --move /dev $r/dev
exec switch_root $r /bin/bash /.host$hostdir/guest-init.sh
