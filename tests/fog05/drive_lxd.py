"""Drives an LXD-style FDU (a container) through fos's fog05 REST API with the fog05rest client (0.0.4).

Usage: drive_lxd.py ADDRESS IMAGE_ARCHIVE. The image (an OCI layout archive) is added with its sha256, the FDU
refers to it by the descriptor `image.get` answers (as OSM's connector does). Prints `ok` at the end.
"""
import os
import sys
import time
import uuid

from fog05rest import FIMAPI

from common import step, add_image

addr, archive = sys.argv[1:3]
api = FIMAPI(locator=addr)
marker = f"lxd-fdu-{uuid.uuid4()}"


def pids():
    out = []
    for p in os.listdir("/proc"):
        if p.isdigit():
            try:
                with open(f"/proc/{p}/cmdline", "rb") as f:
                    if marker.encode() in f.read() and int(p) != os.getpid():
                        out.append(int(p))
            except OSError:
                pass
    return out


node = api.node.list()[0]
hypervisors = [api.plugin.info(node, p)["name"] for p in api.node.plugins(node)]
assert "LXD" in hypervisors, hypervisors

step("image added with its sha256")
image, _ = add_image(api, archive, "busybox", "tar.gz")

step("an LXD FDU onboarded with the image's descriptor")
fdu = {"uuid": str(uuid.uuid4()), "name": "busybox_lxd",
       "computation_requirements": {"cpu_arch": api.node.info(node)["cpu"][0]["arch"], "cpu_min_freq": 0,
                                    "cpu_min_count": 1, "ram_size_mb": 64.0, "storage_size_gb": 1.0},
       "image": api.image.get(image),
       "command": {"binary": "/bin/sh", "args": ["-c", f"echo {marker}; while true; do sleep 1; done", marker]},
       "hypervisor": "LXD", "migration_kind": "COLD", "interfaces": [], "io_ports": [], "connection_points": [],
       "depends_on": []}
assert "result" in api.fdu.onboard(fdu), fdu

step("instantiated: a container running for real")
record = api.fdu.instantiate(fdu["uuid"], node)
instance = record["uuid"]
assert record["status"] == "RUN", record
first = pids()
assert first, "the container's process runs"

step("stop, start, pause, resume")
assert api.fdu.stop(instance) == instance and api.fdu.instance_info(instance)["status"] == "CONFIGURE"
time.sleep(0.5)
assert not pids(), "stopped: no process"
assert api.fdu.start(instance) == instance and pids()
assert api.fdu.pause(instance) == instance and api.fdu.instance_info(instance)["status"] == "PAUSE"
assert api.fdu.resume(instance) == instance and api.fdu.instance_info(instance)["status"] == "RUN"

step("terminate, offload, image removed")
assert api.fdu.terminate(instance) == instance
time.sleep(0.5)
assert not pids(), "terminated: no process"
assert "result" in api.fdu.offload(fdu["uuid"])
assert "result" in api.image.remove(image)
assert api.image.list() == []
print("ok", flush=True)
