#!/usr/bin/env bash
# Runs the given fos-sim command against a fresh 3-member etcd cluster on loopback (free ports, a temporary data
# directory), appending `--etcd` with its client URLs, and removes the cluster afterwards.
set -euo pipefail
dir=$(mktemp -d)
pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$dir"
}
trap cleanup EXIT
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
cluster=() clients=()
for i in 0 1 2; do
    peer[$i]=$(port); client[$i]=$(port)
    cluster+=("m$i=http://127.0.0.1:${peer[$i]}")
    clients+=("http://127.0.0.1:${client[$i]}")
done
initial=$(IFS=,; echo "${cluster[*]}")
for i in 0 1 2; do
    etcd --name "m$i" --data-dir "$dir/m$i" \
        --listen-peer-urls "http://127.0.0.1:${peer[$i]}" --initial-advertise-peer-urls "http://127.0.0.1:${peer[$i]}" \
        --listen-client-urls "http://127.0.0.1:${client[$i]}" --advertise-client-urls "http://127.0.0.1:${client[$i]}" \
        --initial-cluster "$initial" --initial-cluster-state new --log-level error >"$dir/m$i.log" 2>&1 &
    pids+=($!)
done
endpoints=$(IFS=,; echo "${clients[*]}")
for _ in $(seq 100); do
    curl -fs "${clients[0]}/health" | grep -q '"health":"true"' && break
    sleep 0.1
done
"$@" --etcd "$endpoints"
