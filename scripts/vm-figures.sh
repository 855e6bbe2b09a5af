#!/bin/bash
# VM figures on this machine: fosd's own RSS with 3 VMs running (QEMU's RSS beside it), with a libvirtd of its own
# (scripts/libvirtd-sandbox.sh) and the test guest (scripts/build-test-guest.sh). Needs the debug (or FOS_BIN_DIR)
# fosd and fosctl built. Everything it starts is stopped and removed at the end.
# Usage: scripts/vm-figures.sh
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
bin=${FOS_BIN_DIR:-$here/target/debug}
work=$(mktemp -d)
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
fosd_pid=
cleanup() {
    [ -n "$fosd_pid" ] && "$bin/fosctl" --config "$work/data/fosctl.yaml" --server "https://127.0.0.1:$port" \
        delete vmfig --wait --timeout 120s >/dev/null 2>&1 || true
    [ -n "$fosd_pid" ] && kill "$fosd_pid" 2>/dev/null && wait "$fosd_pid" 2>/dev/null || true
    "$here/scripts/libvirtd-sandbox.sh" stop "$work/libvirt"
    rm -rf "$work"
}
trap cleanup EXIT
"$here/scripts/build-test-guest.sh" "$here/target/test-guest"
"$here/scripts/libvirtd-sandbox.sh" start "$work/libvirt"
printf 'runtimes:\n  vm:\n    config:\n      uri: "qemu+unix:///system?socket=%s/libvirt/run/libvirt-sock"\n      accel: tcg\n' \
    "$work" >"$work/node.yaml"
"$bin/fosd" --data-dir "$work/data" --listen "127.0.0.1:$port" --node-name fig --config "$work/node.yaml" \
    --log warn 2>"$work/fosd.log" &
fosd_pid=$!
fosctl() { "$bin/fosctl" --config "$work/data/fosctl.yaml" --server "https://127.0.0.1:$port" "$@"; }
for _ in $(seq 300); do fosctl node list >/dev/null 2>&1 && break; sleep 0.1; done
fosctl image upload "$here/target/test-guest/vmlinuz" --name fig-kernel >/dev/null
fosctl image upload "$here/target/test-guest/initrd.img" --name fig-initrd >/dev/null
{
    printf 'apiVersion: fos/v1\nkind: Application\nmetadata: {name: vmfig}\nspec:\n'
    printf '  networks: [{name: lan, type: vxlan, ipRange: 10.204.9.0/24, gateway: 10.204.9.1}]\n  components:\n'
    for i in 1 2 3; do
        printf '    - name: g%s\n      entity: {kind: vm, kernel: fig-kernel, initrd: fig-initrd, memory: 128Mi, ' "$i"
        printf 'networks: [{network: lan}], readiness: {http: {port: 80, path: /counter}}}\n'
    done
} >"$work/app.yaml"
fosctl apply -f "$work/app.yaml" --wait --timeout 300s >/dev/null
sleep 5
rss() { awk '/VmRSS/ {print $2}' "/proc/$1/status"; }
echo "fosd RSS with 3 VMs running: $(($(rss "$fosd_pid") / 1024)) MiB"
for q in $(pgrep -f "qemu-system-x86_64 .*fos-"); do echo "qemu $q RSS: $(($(rss "$q") / 1024)) MiB"; done
