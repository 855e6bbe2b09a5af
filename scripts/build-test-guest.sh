#!/bin/bash
# Builds fos's test guest from Debian packages, since the tests download nothing else: a kernel (`vmlinuz`) from a
# linux-image-*-amd64 package and an initramfs (`initrd.img`) of static busybox plus the virtio network and block
# modules.
# The guest, booted directly (kernel + initrd + command line, serial console on ttyS0):
#   - brings up eth0 with the address of `fos.ip=A.B.C.D/N` (and default route `fos.gw=A.B.C.D`) from its command
#     line, else asks DHCP (udhcpc);
#   - counts its boots on every virtio disk it sees (/dev/vdX, raw: the first sector holds "fos-disk boots N", read,
#     incremented and written back at boot), lists them in /www/disks ("vdb boots=N sectors=S") and on the console;
#   - counts seconds since boot into /www/counter and prints "fos-guest counter N" to the console every 5 s;
#   - serves /www over HTTP on port 80 (busybox httpd): `/` says "fos test guest", `/counter` the counter.
# A disk with a boot sector (the guest's own boot disk) is left alone.
# Also the same guest as a bootable disk (`disk.img`, raw), for VMs booted from their image as fog05's KVM FDUs are: a
# FAT file system with syslinux, the kernel, the initramfs and a syslinux.cfg booting them with the serial console
# (syslinux, syslinux-common, mtools and dosfstools downloaded as Debian packages like the kernel, and run from there).
#
# Usage: scripts/build-test-guest.sh [OUT_DIR]   (default target/test-guest; skipped when the three files are newer
# than this script). Needs apt-get (download only: nothing is installed), dpkg-deb, busybox-static, cpio, gzip.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
out=${1:-$here/../target/test-guest}
mkdir -p "$out"
out=$(cd "$out" && pwd)
if [ "$out/vmlinuz" -nt "$0" ] && [ "$out/initrd.img" -nt "$0" ] && [ "$out/disk.img" -nt "$0" ]; then
    exit 0
fi

busybox=/bin/busybox
file "$busybox" 2>/dev/null | grep -q 'statically linked' || [ -f /usr/share/doc/busybox-static/copyright ] || {
    echo "build-test-guest: static busybox missing — install busybox-static" >&2
    exit 1
}

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# The .deb of package $1 in the cache, downloaded first when absent.
deb_of() {
    local d
    d=$(ls "$cache"/"$1"_*.deb 2>/dev/null | head -n1 || true)
    if [ -z "$d" ]; then
        (cd "$cache" && apt-get download -q "$1" 2>&1 | grep -v '^W: Download is performed unsandboxed' >&2 || true)
        d=$(ls "$cache"/"$1"_*.deb 2>/dev/null | head -n1 || true)
    fi
    [ -n "$d" ] || {
        echo "build-test-guest: apt-get download $1 failed" >&2
        exit 1
    }
    echo "$d"
}

# The newest linux-image-6.1.0-N-amd64 the archive offers (a plain kernel, not cloud/rt; its NIC drivers are modules).
cache="$out/cache"
mkdir -p "$cache"
deb=$(ls "$cache"/linux-image-*-amd64_*.deb 2>/dev/null | head -n1 || true)
if [ -z "$deb" ]; then
    pkg=$(apt-cache search --names-only '^linux-image-[0-9.]+-[0-9]+-amd64$' | awk '{print $1}' | sort -V | tail -n1)
    [ -n "$pkg" ] || {
        echo "build-test-guest: no linux-image-*-amd64 package known to apt (run apt-get update)" >&2
        exit 1
    }
    (cd "$cache" && apt-get download -q "$pkg" 2>&1 | grep -v '^W: Download is performed unsandboxed' || true)
    deb=$(ls "$cache"/linux-image-*-amd64_*.deb 2>/dev/null | head -n1 || true)
    [ -n "$deb" ] || {
        echo "build-test-guest: apt-get download $pkg failed" >&2
        exit 1
    }
fi
dpkg-deb -x "$deb" "$work/kernel"
vmlinuz=$(ls "$work"/kernel/boot/vmlinuz-* | head -n1)
release=${vmlinuz##*/vmlinuz-}
moddir="$work/kernel/lib/modules/$release/kernel"

root="$work/root"
mkdir -p "$root"/{bin,sbin,proc,sys,dev,tmp,www,etc,modules,usr/share/udhcpc}
cp "$busybox" "$root/bin/busybox"
for m in virtio_ring virtio virtio_pci_legacy_dev virtio_pci_modern_dev virtio_pci failover net_failover virtio_net \
    virtio_blk; do
    f=$(find "$moddir" -name "$m.ko*" | head -n1)
    [ -n "$f" ] || {
        echo "build-test-guest: module $m not in $deb" >&2
        exit 1
    }
    case $f in
    *.xz) xz -dc "$f" >"$root/modules/$m.ko" ;;
    *.zst) zstd -qdc "$f" >"$root/modules/$m.ko" ;;
    *) cp "$f" "$root/modules/$m.ko" ;;
    esac
done

cat >"$root/init" <<'EOF'
#!/bin/busybox sh
/bin/busybox --install -s /bin
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
for m in virtio_ring virtio virtio_pci_legacy_dev virtio_pci_modern_dev virtio_pci failover net_failover virtio_net \
    virtio_blk; do
    insmod /modules/$m.ko 2>/dev/null
done
: >/www/disks
for d in /sys/block/vd*; do
    [ -e "$d" ] || continue
    name=${d##*/}
    [ "$(dd if=/dev/$name bs=1 skip=510 count=2 2>/dev/null | od -An -tx1 | tr -d ' ')" = 55aa ] && continue
    n=$(dd if=/dev/$name bs=512 count=1 2>/dev/null | tr -d '\000' | sed -n 's/^fos-disk boots \([0-9]*\)$/\1/p')
    n=$((${n:-0} + 1))
    echo "fos-disk boots $n" | dd of=/dev/$name bs=512 count=1 conv=sync,notrunc 2>/dev/null
    sync
    echo "$name boots=$n sectors=$(cat $d/size)" >>/www/disks
    echo "fos-guest disk $name boots=$n"
done
ip link set lo up
ip=; gw=
for arg in $(cat /proc/cmdline); do
    case $arg in
    fos.ip=*) ip=${arg#fos.ip=} ;;
    fos.gw=*) gw=${arg#fos.gw=} ;;
    esac
done
if ip link show eth0 >/dev/null 2>&1; then
    ip link set eth0 up
    if [ -n "$ip" ]; then
        ip addr add "$ip" dev eth0
        [ -n "$gw" ] && ip route add default via "$gw"
    else
        udhcpc -i eth0 -q -n -t 10 -s /usr/share/udhcpc/default.script
    fi
fi
echo "fos-guest up: $(ip -4 -o addr show eth0 2>/dev/null | awk '{print $4}')"
echo 'fos test guest' >/www/index.html
echo 0 >/www/counter
(
    n=0
    while true; do
        sleep 1
        n=$((n + 1))
        echo $n >/www/counter.new && mv /www/counter.new /www/counter
        [ $((n % 5)) -eq 0 ] && echo "fos-guest counter $n"
    done
) &
httpd -p 80 -h /www
echo "fos-guest serving http on port 80"
while true; do sleep 3600; done
EOF
chmod 755 "$root/init"

cat >"$root/usr/share/udhcpc/default.script" <<'EOF'
#!/bin/sh
case $1 in
bound | renew)
    ip addr flush dev "$interface"
    ip addr add "$ip/${mask:-24}" dev "$interface"
    [ -n "$router" ] && ip route add default via "${router%% *}"
    ;;
esac
exit 0
EOF
chmod 755 "$root/usr/share/udhcpc/default.script"

cp "$vmlinuz" "$out/vmlinuz.new"
(cd "$root" && find . | cpio -o -H newc --owner=0:0 --quiet | gzip -1) >"$out/initrd.img.new"

# The bootable disk: FAT (no partition table: the BIOS runs its boot sector, syslinux's), sized to its files.
tools="$work/tools"
for p in syslinux syslinux-common mtools dosfstools; do
    deb=$(deb_of "$p")
    dpkg-deb -x "$deb" "$tools"
done
cat >"$work/syslinux.cfg" <<'EOF'
DEFAULT fos
PROMPT 0
TIMEOUT 0
LABEL fos
  KERNEL vmlinuz
  INITRD initrd.img
  APPEND console=ttyS0 quiet
EOF
kib=$((($(stat -c %s "$out/vmlinuz.new") + $(stat -c %s "$out/initrd.img.new")) / 1024 + 2048))
PATH="$tools/usr/bin:$tools/usr/sbin:$tools/sbin:$PATH"
mkfs.fat -C -n FOSGUEST "$work/disk.img" "$kib" >/dev/null
syslinux --install "$work/disk.img"
mcopy -i "$work/disk.img" "$out/vmlinuz.new" ::vmlinuz
mcopy -i "$work/disk.img" "$out/initrd.img.new" ::initrd.img
mcopy -i "$work/disk.img" "$work/syslinux.cfg" ::syslinux.cfg
cp "$work/disk.img" "$out/disk.img.new"

mv "$out/vmlinuz.new" "$out/vmlinuz"
mv "$out/initrd.img.new" "$out/initrd.img"
mv "$out/disk.img.new" "$out/disk.img"
echo "test guest: $out/vmlinuz ($release), $out/initrd.img, $out/disk.img"
