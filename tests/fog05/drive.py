"""Drives fos's fog05 REST API with the fog05rest client (0.0.4), as OSM's fos connector does.

Usage: drive.py ADDRESS TENANT MARKS_DIR WORK_DIR. Every step asserts what it gets; prints `ok` at the end.
"""
import hashlib
import json
import os
import sys
import time
import uuid

from fog05rest import FIMAPI

from common import step, alive

addr, tenant, marks, work = sys.argv[1:5]
api = FIMAPI(locator=addr)


def beats():
    try:
        with open(os.path.join(marks, "fdu.beat")) as f:
            return len(f.read().split())
    except FileNotFoundError:
        return 0


def pid():
    with open(os.path.join(marks, "fdu.pid")) as f:
        return int(f.read().strip())


def growing(seconds=1.5):
    before = beats()
    time.sleep(seconds)
    return beats() > before


step("check")
index = api.check()
assert index["tenant"] == tenant and index["version"] and index["system"], index

step("node list and info")
nodes = api.node.list()
assert len(nodes) == 1, nodes
node = nodes[0]
uuid.UUID(node)
info = api.node.info(node)
assert info["uuid"] == node and info["name"] == "e2e", info
assert info["cpu"] and all(k in info["cpu"][0] for k in ("arch", "frequency", "model")), info["cpu"]
assert info["cpu"][0]["arch"] in ("x86_64", "aarch64"), info["cpu"]
assert info["ram"]["size"] > 0, info["ram"]
assert info["disks"] and all(k in d for d in info["disks"] for k in ("local_address", "dimension", "mount_point"))
assert isinstance(info["network"], list) and all("intf_name" in i for i in info["network"]), info["network"]
assert "io" in info and "accelerator" in info, info.keys()
assert api.node.status(node)["status"] == "online"
hypervisors = [api.plugin.info(node, p)["name"] for p in api.node.plugins(node)]
assert "BARE" in hypervisors, hypervisors
missing = api.node.info(str(uuid.uuid4()))
assert "error" in missing, missing

step("flavor add and list")
flavor = {"uuid": str(uuid.uuid4()), "name": "tiny", "cpu_arch": info["cpu"][0]["arch"], "cpu_min_freq": 0.0,
          "cpu_min_count": 1, "ram_size_mb": 64.0, "storage_size_gb": 1.0}
assert "result" in api.flavor.add(flavor)
assert [f["uuid"] for f in api.flavor.list()] == [flavor["uuid"]]
assert api.flavor.get(flavor["uuid"])["ram_size_mb"] == 64.0
assert "error" in api.flavor.add({"name": "bad", "cpu_min_count": "two"})

step("image add with its sha256; a wrong checksum refused")
path = os.path.join(work, "blob.img")
content = os.urandom(256 * 1024)
with open(path, "wb") as f:
    f.write(content)
digest = hashlib.sha256(content).hexdigest()
refused = api.image.add({"name": "wrong", "uri": "", "checksum": "0" * 64, "format": "raw"}, path)
assert isinstance(refused, dict) and "sha256 mismatch" in refused.get("error", ""), refused
image = api.image.add({"name": "blob", "uri": "", "checksum": digest, "format": "raw"}, path)
assert isinstance(image, str), image
got = api.image.get(image)
assert got["checksum"] == digest and got["uri"] == f"fos:sha256:{digest}", got
assert [i["uuid"] for i in api.image.list()] == [image]

step("network add")
net = {"uuid": str(uuid.uuid4()), "name": "net1", "net_type": "ELAN", "is_mgmt": False,
       "ip_configuration": {"ip_version": "IPV4", "subnet": "10.77.0.0/24", "gateway": "10.77.0.1",
                            "dhcp_enable": False, "dhcp_range": "", "dns": ""}}
assert "result" in api.network.add_network(net)
assert [n["uuid"] for n in api.network.list()] == [net["uuid"]], api.network.list()

step("a BARE FDU onboarded")
script = (f"echo $$ > {marks}/fdu.pid; "
          f"while true; do date +%s%N >> {marks}/fdu.beat; sleep 0.1; done")
fdu = {"id": "hello_fdu", "uuid": str(uuid.uuid4()), "name": "hello",
       "computation_requirements": {"cpu_arch": info["cpu"][0]["arch"], "cpu_min_freq": 0, "cpu_min_count": 1,
                                    "ram_size_mb": 64.0, "storage_size_gb": 1.0},
       "command": {"binary": "/bin/sh", "args": ["-c", script]},
       "hypervisor": "BARE", "migration_kind": "COLD", "storage": [], "depends_on": [],
       "interfaces": [{"name": "eth0", "is_mgmt": False, "if_type": "INTERNAL", "mac_address": "be:ef:be:ef:00:01",
                       "virtual_interface": {"intf_type": "VIRTIO", "vpci": "0:0:0", "bandwidth": 10},
                       "cp_id": "cp-eth0"}],
       "io_ports": [], "connection_points": [{"uuid": "cp-eth0", "pair_id": net["uuid"]}]}
assert "result" in api.fdu.onboard(fdu)
assert api.fdu.info(fdu["uuid"])["name"] == "hello"
assert [f["uuid"] for f in api.fdu.list()] == [fdu["uuid"]]
refused = api.fdu.onboard(dict(fdu, uuid=str(uuid.uuid4()), hypervisor="MCU"))
assert "no runtime in fos" in refused.get("error", ""), refused

step("instantiated on the node, running for real")
record = api.fdu.instantiate(fdu["uuid"], node)
instance = record["uuid"]
uuid.UUID(instance)
assert record["status"] == "RUN", record
first = pid()
assert alive(first) and growing(), "the FDU's process runs"
ii = api.fdu.instance_info(instance)
assert ii["status"] == "RUN" and ii["fdu_uuid"] == fdu["uuid"] and ii["node"] == node, ii
eth0 = ii["hypervisor_info"]["network"]["eth0"]
assert eth0["hwaddr"] == "be:ef:be:ef:00:01", ii
assert eth0["addresses"][0]["address"].startswith("10.77.0."), ii
assert ii["connection_points"] == [{"uuid": "cp-eth0", "pair_id": net["uuid"]}], ii
busy = json.loads(__import__("requests").delete(f"http://{addr}/network/remove/{net['uuid']}").content)
assert "error" in busy, busy
assert api.fdu.instance_list(fdu["uuid"]) == {node: [instance]}
assert api.fdu.get_nodes(fdu["uuid"], node) == [node]
assert api.fdu.list_node(node) == [fdu["uuid"]]
busy = json.loads(__import__("requests").delete(f"http://{addr}/fdu/offload/{fdu['uuid']}").content)
assert "terminate them first" in busy.get("error", ""), busy

step("stop, start")
assert api.fdu.stop(instance) == instance
assert api.fdu.instance_info(instance)["status"] == "CONFIGURE"
assert not alive(first), "stopped: the process is gone"
assert api.fdu.start(instance) == instance
second = pid()
assert second != first and alive(second) and growing(), "started again"

step("pause, resume")
assert api.fdu.pause(instance) == instance
assert api.fdu.instance_info(instance)["status"] == "PAUSE"
time.sleep(0.5)
assert not growing(), "paused: no beat"
assert api.fdu.resume(instance) == instance
assert api.fdu.instance_info(instance)["status"] == "RUN"
assert growing(), "resumed"

step("terminate")
assert api.fdu.terminate(instance) == instance
assert not alive(second), "terminated: the process is gone"
assert "error" in api.fdu.instance_info(instance)
assert api.fdu.instance_list(fdu["uuid"]) == {}

step("define, configure, start, stop, clean, undefine")
answer = api.fdu.define(fdu["uuid"], node)  # fog05rest 0.0.4 hands define's answer back whole
record = answer["result"]
assert record["status"] == "DEFINE", answer
other = record["uuid"]
assert api.fdu.configure(other) == other
assert api.fdu.instance_info(other)["status"] == "CONFIGURE"
assert api.fdu.start(other) == other
third = pid()
assert third != second and alive(third)
assert api.fdu.stop(other) == other and not alive(third)
assert api.fdu.clean(other) == other
assert api.fdu.instance_info(other)["status"] == "DEFINE"
assert api.fdu.undefine(other) == other
assert "error" in api.fdu.instance_info(other)

step("offload, image and flavor removed, network removed")
assert "result" in api.fdu.offload(fdu["uuid"])
assert api.fdu.list() == []
assert "result" in api.image.remove(image)
assert api.image.list() == []
assert "result" in api.flavor.remove(flavor["uuid"])
assert api.flavor.list() == []
assert "result" in api.network.remove_network(net["uuid"])
assert api.network.list() == []
print("ok", flush=True)
