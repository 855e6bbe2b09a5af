"""Migrates an LXD-style FDU (a container) live between two fos nodes with the fog05rest client (0.0.4).

Usage: drive_migrate_lxd.py ADDRESS MARKS_DIR IMAGE_ARCHIVE NETNS_A NETNS_B. Runs where ADDRESS is reachable (node
A's namespace). The image (an OCI layout archive) is added with its sha256 through node A; the FDU (`migration_kind:
LIVE`) refers to it by the descriptor `image.get` answers. Its process keeps a count and a random token in memory and
prints `out <count> <token>` every 200 ms. It is instantiated on node A (`n0`), migrated to node B (`n1`) with
`api.fdu.migrate`, then (once the test has looked at the cluster and the instance's output: it writes
MARKS_DIR/checked after this script wrote MARKS_DIR/migrated) terminated and offloaded, and the image removed.
Every step asserts what it gets; prints `ok` at the end.
"""
import os
import sys
import time
import uuid

from fog05rest import FIMAPI

from common import step, add_image, alive, eventually, hand_over, two_nodes

addr, marks, archive, netns_a, netns_b = sys.argv[1:6]
api = FIMAPI(locator=addr)
marker = f"lxd-mover-{uuid.uuid4()}"


def pids():
    """The host pids of the FDU's shell (its command line carries the marker)."""
    out = []
    for p in os.listdir("/proc"):
        if p.isdigit() and int(p) != os.getpid():
            try:
                with open(f"/proc/{p}/cmdline", "rb") as f:
                    if marker.encode() in f.read():
                        out.append(int(p))
            except OSError:
                pass
    return out


def netns_of(pid):
    return os.stat(f"/proc/{pid}/ns/net").st_ino


def inode(netns):
    return os.stat(f"/run/netns/{netns}").st_ino


step("two nodes offering LXD")
a, b = two_nodes(api, "LXD")

step("image added with its sha256 through n0")
image, digest = add_image(api, archive, "busybox", "tar.gz")
assert api.image.get(image)["checksum"] == digest

step("an LXD FDU (migration_kind LIVE) onboarded, instantiated on n0")
script = 't=$RANDOM$RANDOM$RANDOM; n=0; while :; do n=$((n+1)); echo "out $n $t"; sleep 0.2; done'
fdu = {"uuid": str(uuid.uuid4()), "name": "lxd_mover",
       "computation_requirements": {"cpu_arch": api.node.info(a)["cpu"][0]["arch"], "cpu_min_freq": 0,
                                    "cpu_min_count": 1, "ram_size_mb": 64.0, "storage_size_gb": 1.0},
       "image": api.image.get(image),
       "command": {"binary": "/bin/sh", "args": ["-c", script, marker]},
       "hypervisor": "LXD", "migration_kind": "LIVE", "interfaces": [], "io_ports": [], "connection_points": [],
       "depends_on": []}
assert "result" in api.fdu.onboard(fdu), fdu
record = api.fdu.instantiate(fdu["uuid"], a)
instance = record["uuid"]
assert record["status"] == "RUN" and record["node"] == a, record
eventually("the container's process", lambda: len(pids()) == 1)
[first] = pids()
assert netns_of(first) == inode(netns_a), "it runs in n0's namespace"
time.sleep(2)

step("migrated live to n1 by fog05rest's migrate: the same instance, running on n1 only")
moved = api.fdu.migrate(instance, b)
assert moved["uuid"] == instance and moved["node"] == b and moved["status"] == "RUN", moved
info = api.fdu.instance_info(instance)
assert info["uuid"] == instance and info["node"] == b and info["status"] == "RUN", info
assert info["fdu_uuid"] == fdu["uuid"] and info["hypervisor"] == "LXD", info
assert api.fdu.instance_list(fdu["uuid"]) == {b: [instance]}
assert api.fdu.list_node(a) == [] and api.fdu.list_node(b) == [fdu["uuid"]]
assert not alive(first), "the container on n0 is gone"
running = pids()
assert len(running) == 1 and netns_of(running[0]) == inode(netns_b), f"one process, in n1's namespace: {running}"
second = running[0]

step("the test looks at the cluster and the instance's output")
hand_over(marks, instance)

step("terminated and offloaded, the image removed")
assert api.fdu.terminate(instance) == instance
eventually("no process left", lambda: not pids() and not alive(second), 30)
assert "error" in api.fdu.instance_info(instance)
assert api.fdu.instance_list(fdu["uuid"]) == {}
assert "result" in api.fdu.offload(fdu["uuid"])
assert api.fdu.list() == []
assert "result" in api.image.remove(image)
assert api.image.list() == []
print("ok", flush=True)
