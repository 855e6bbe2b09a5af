#!/bin/bash
# Starts or stops a libvirtd of its own for fos's VM tests, without systemd and without touching the machine's
# libvirt: the daemon runs in a mount namespace of its own where DIR's copies are bind-mounted over /etc/libvirt,
# /var/lib/libvirt, /run/libvirt, /var/log/libvirt and /var/cache/libvirt. It shares the network namespace (the taps
# of its guests go on the node's bridges). Its socket is DIR/run/libvirt-sock: connect with
#   qemu+unix:///system?socket=DIR/run/libvirt-sock
#
# Its qemu.conf runs QEMU as root with its output in files (no virtlogd) and without cgroups. QEMU as root also keeps
# libvirt's capability cache valid on machines where /dev/kvm is root-only: run as libvirt-qemu, libvirt finds KVM
# "gone" on every call and probes QEMU again (about a minute per domain start).
#
# Usage: scripts/libvirtd-sandbox.sh start DIR   (returns once the socket answers; DIR/libvirtd.pid)
#        scripts/libvirtd-sandbox.sh stop DIR    (destroys what runs in it, stops the daemon, removes DIR)
set -euo pipefail

cmd=${1:?usage: $0 start|stop DIR}
dir=${2:?usage: $0 start|stop DIR}
PATH=$PATH:/usr/sbin:/sbin

case $cmd in
start)
    mkdir -p "$dir"
    dir=$(cd "$dir" && pwd)
    mkdir -p "$dir"/{etc,lib,run,log,cache}
    cp -a /etc/libvirt/. "$dir/etc/"
    rm -rf "$dir/etc/qemu/"*.xml "$dir/etc/qemu/autostart" "$dir/etc/qemu/networks/autostart"
    mkdir -p "$dir/lib/qemu" "$dir/lib/images" "$dir/log/qemu" "$dir/cache/qemu"
    cat >>"$dir/etc/qemu.conf" <<'EOF'

# fos test daemon
user = "root"
group = "root"
dynamic_ownership = 0
remember_owner = 0
security_driver = "none"
stdio_handler = "file"
cgroup_controllers = [ ]
EOF
    cat >>"$dir/etc/libvirtd.conf" <<'EOF'

# fos test daemon
unix_sock_group = "root"
unix_sock_rw_perms = "0700"
auth_unix_rw = "none"
EOF
    # Its own host UUID, so a second daemon on this machine is another "host" to libvirt.
    echo "host_uuid = \"$(cat /proc/sys/kernel/random/uuid)\"" >>"$dir/etc/libvirtd.conf"
    unshare -m --propagation private sh -c '
        d=$1
        mkdir -p /run/libvirt /var/lib/libvirt /var/log/libvirt /var/cache/libvirt
        mount --bind "$d/etc" /etc/libvirt
        mount --bind "$d/lib" /var/lib/libvirt
        mount --bind "$d/run" /run/libvirt
        mount --bind "$d/log" /var/log/libvirt
        mount --bind "$d/cache" /var/cache/libvirt
        exec libvirtd -p "$d/libvirtd.pid"
    ' sh "$dir" >"$dir/libvirtd.out" 2>&1 </dev/null &
    echo $! >"$dir/unshare.pid"
    for _ in $(seq 300); do
        if [ -S "$dir/run/libvirt-sock" ] &&
            virsh -q -c "qemu+unix:///system?socket=$dir/run/libvirt-sock" version >/dev/null 2>&1; then
            exit 0
        fi
        kill -0 "$(cat "$dir/unshare.pid")" 2>/dev/null || break
        sleep 0.1
    done
    echo "libvirtd-sandbox: libvirtd did not answer on $dir/run/libvirt-sock:" >&2
    cat "$dir/libvirtd.out" >&2
    exit 1
    ;;
stop)
    [ -d "$dir" ] || exit 0
    uri="qemu+unix:///system?socket=$dir/run/libvirt-sock"
    if [ -S "$dir/run/libvirt-sock" ]; then
        for d in $(virsh -q -c "$uri" list --all --name 2>/dev/null); do
            virsh -q -c "$uri" destroy "$d" >/dev/null 2>&1 || true
            virsh -q -c "$uri" undefine "$d" >/dev/null 2>&1 || true
        done
    fi
    for f in libvirtd.pid unshare.pid; do
        pid=$(cat "$dir/$f" 2>/dev/null || true)
        [ -n "$pid" ] && kill "$pid" 2>/dev/null || true
    done
    for _ in $(seq 100); do
        pid=$(cat "$dir/unshare.pid" 2>/dev/null || true)
        { [ -z "$pid" ] || ! kill -0 "$pid" 2>/dev/null; } && break
        sleep 0.1
    done
    rm -rf "$dir"
    ;;
*)
    echo "usage: $0 start|stop DIR" >&2
    exit 2
    ;;
esac
