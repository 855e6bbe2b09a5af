"""Migrates a BARE FDU between two fos nodes with the fog05rest client (0.0.4), as OSM would.

Usage: drive_migrate.py ADDRESS MARKS_DIR NETNS_A NETNS_B. Runs where ADDRESS is reachable (node A's namespace).
The FDU appends `<its node> <time>` to MARKS_DIR/fdu.beat every 100 ms and writes its pid to MARKS_DIR/fdu.pid. It
is instantiated on node A (`n0`), migrated to node B (`n1`) with `api.fdu.migrate`, then (once the test has looked
at the cluster: it writes MARKS_DIR/checked after this script wrote MARKS_DIR/migrated) terminated and offloaded.
Every step asserts what it gets; prints `ok` at the end.
"""
import os
import sys
import time
import uuid

from fog05rest import FIMAPI

from common import step, alive, hand_over

addr, marks, netns_a, netns_b = sys.argv[1:5]
api = FIMAPI(locator=addr)


def netns_of(pid):
    """The inode of the network namespace process `pid` is in."""
    return os.stat(f"/proc/{pid}/ns/net").st_ino


def inode(netns):
    return os.stat(f"/run/netns/{netns}").st_ino


def beats(node):
    """How many beats the FDU wrote on `node`."""
    try:
        with open(os.path.join(marks, "fdu.beat")) as f:
            return sum(1 for line in f if line.split()[:1] == [node])
    except FileNotFoundError:
        return 0


def pid():
    with open(os.path.join(marks, "fdu.pid")) as f:
        return int(f.read().strip())


def growing(node, seconds=1.5):
    before = beats(node)
    time.sleep(seconds)
    return beats(node) > before


step("two nodes")
nodes = {api.node.info(n)["name"]: n for n in api.node.list()}
assert sorted(nodes) == ["n0", "n1"], nodes
a, b = nodes["n0"], nodes["n1"]

step("a BARE FDU onboarded, instantiated on n0")
script = (f"echo $$ > {marks}/fdu.pid; "
          f"while true; do echo \"$FOS_NODE $(date +%s%N)\" >> {marks}/fdu.beat; sleep 0.1; done")
arch = api.node.info(a)["cpu"][0]["arch"]
fdu = {"id": "mover", "uuid": str(uuid.uuid4()), "name": "mover",
       "computation_requirements": {"cpu_arch": arch, "cpu_min_freq": 0, "cpu_min_count": 1,
                                    "ram_size_mb": 32.0, "storage_size_gb": 1.0},
       "command": {"binary": "/bin/sh", "args": ["-c", script]},
       "hypervisor": "BARE", "migration_kind": "COLD", "storage": [], "depends_on": [], "interfaces": [],
       "io_ports": [], "connection_points": []}
assert "result" in api.fdu.onboard(fdu)
record = api.fdu.instantiate(fdu["uuid"], a)
instance = record["uuid"]
assert record["status"] == "RUN" and record["node"] == a, record
first = pid()
assert alive(first) and netns_of(first) == inode(netns_a), "it runs in n0's namespace"
assert growing("n0"), "it beats on n0"

step("migrated to n1 by fog05rest's migrate: the same instance, running on n1 only")
moved = api.fdu.migrate(instance, b)
assert moved["uuid"] == instance and moved["node"] == b and moved["status"] == "RUN", moved
info = api.fdu.instance_info(instance)
assert info["uuid"] == instance and info["node"] == b and info["status"] == "RUN", info
assert info["fdu_uuid"] == fdu["uuid"], info
assert api.fdu.instance_list(fdu["uuid"]) == {b: [instance]}
assert api.fdu.get_nodes(fdu["uuid"], b) == [b]
assert api.fdu.list_node(a) == [] and api.fdu.list_node(b) == [fdu["uuid"]]
second = pid()
assert second != first and not alive(first), "the copy on n0 is gone"
assert alive(second) and netns_of(second) == inode(netns_b), "it runs in n1's namespace"
on_a = beats("n0")
assert growing("n1"), "it beats on n1"
assert beats("n0") == on_a, "and no more on n0"

step("a migration to where it runs, or to no node, is refused")
for to, why in ((b, "runs there already"), (str(uuid.uuid4()), "not found")):
    try:
        api.fdu.migrate(instance, to)
        raise AssertionError(f"migrating to {to} was accepted")
    except ValueError as e:
        assert why in str(e), e
assert api.fdu.instance_info(instance)["node"] == b

step("the test looks at the cluster")
hand_over(marks, instance)

step("terminated and offloaded")
assert api.fdu.terminate(instance) == instance
assert not alive(second), "terminated: the process is gone"
assert "error" in api.fdu.instance_info(instance)
assert api.fdu.instance_list(fdu["uuid"]) == {}
assert "result" in api.fdu.offload(fdu["uuid"])
assert api.fdu.list() == []
print("ok", flush=True)
