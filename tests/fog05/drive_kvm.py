"""Drives a KVM FDU (a VM) through fos's fog05 REST API with the fog05rest client (0.0.4), as OSM does.

Usage: drive_kvm.py ADDRESS DISK_IMAGE LIBVIRT_URI. The disk (the test guest, bootable) is added as an image with its
sha256; the FDU refers to it by the descriptor `image.get` answers and has one interface on a fog05 network with
DHCP (the guest, booted from its disk, asks for its address). The guest is seen in the node's libvirtd (the domain's
state), on its serial console (the lines it prints) and at its address (its HTTP counter, reached through the
network's gateway on the node). Prints `ok` at the end.
"""
import re
import subprocess
import sys
import time
import urllib.request
import uuid

from fog05rest import FIMAPI

from common import step, add_image

addr, disk, libvirt = sys.argv[1:4]
api = FIMAPI(locator=addr)


def virsh(*args):
    out = subprocess.run(["virsh", "-q", "-c", libvirt, *args], capture_output=True, text=True)
    return out.stdout.strip()


def domains():
    return [d for d in virsh("list", "--all", "--name").splitlines() if d]


def console(domain):
    """What the guest printed on its serial console (the file the domain writes it to)."""
    path = re.search(r"<serial type='file'>\s*<source path='([^']+)'", virsh("dumpxml", domain)).group(1)
    with open(path, errors="replace") as f:
        return f.read()


direct = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def counter(ip):
    """The guest's counter (seconds since its boot), or None when it does not answer."""
    try:
        with direct.open(f"http://{ip}/counter", timeout=2) as r:
            return int(r.read().decode().strip())
    except (OSError, ValueError):
        return None


def eventually(what, check, timeout=120):
    deadline = time.time() + timeout
    while not check():
        assert time.time() < deadline, f"timed out waiting for {what}"
        time.sleep(0.5)


node = api.node.list()[0]
hypervisors = [api.plugin.info(node, p)["name"] for p in api.node.plugins(node)]
assert "KVM" in hypervisors, hypervisors

step("the guest's disk added as an image with its sha256")
image, digest = add_image(api, disk, "fos-guest", "raw")
assert api.image.get(image)["checksum"] == digest

step("a network, a KVM FDU with one interface on it")
net = {"uuid": str(uuid.uuid4()), "name": "vmnet", "net_type": "ELAN", "is_mgmt": False,
       "ip_configuration": {"ip_version": "IPV4", "subnet": "10.204.7.0/24", "gateway": "10.204.7.1",
                            "dhcp_enable": True, "dhcp_range": "", "dns": ""}}
assert "result" in api.network.add_network(net)
mac = "be:ef:be:ef:00:02"
fdu = {"uuid": str(uuid.uuid4()), "name": "guest_kvm",
       "computation_requirements": {"cpu_arch": api.node.info(node)["cpu"][0]["arch"], "cpu_min_freq": 0,
                                    "cpu_min_count": 1, "ram_size_mb": 128.0, "storage_size_gb": 1.0},
       "image": api.image.get(image), "hypervisor": "KVM", "migration_kind": "LIVE",
       "interfaces": [{"name": "eth0", "is_mgmt": False, "if_type": "INTERNAL", "mac_address": mac,
                       "virtual_interface": {"intf_type": "VIRTIO", "vpci": "0:0:0", "bandwidth": 10},
                       "cp_id": "cp-vm"}],
       "io_ports": [], "connection_points": [{"uuid": "cp-vm", "pair_id": net["uuid"]}], "depends_on": []}
assert "result" in api.fdu.onboard(fdu), fdu

step("instantiated: a domain booting the guest from its image")
record = api.fdu.instantiate(fdu["uuid"], node)
instance = record["uuid"]
assert record["status"] == "RUN", record
info = api.fdu.instance_info(instance)
assert info["status"] == "RUN" and info["node"] == node and info["hypervisor"] == "KVM", info
eth0 = info["hypervisor_info"]["network"]["eth0"]
assert eth0["hwaddr"] == mac and eth0["addresses"][0]["address"].startswith("10.204.7."), info
ip = eth0["addresses"][0]["address"]
[domain] = domains()
assert virsh("domstate", domain) == "running"
assert f"<mac address='{mac}'/>" in virsh("dumpxml", domain), "the interface has the FDU's MAC"
eventually("the guest serving", lambda: "fos-guest serving http" in console(domain))
eventually("the guest counting", lambda: "fos-guest counter 5" in console(domain))
eventually("the guest at its address", lambda: counter(ip) is not None, 60)
assert f"fos-guest up: {ip}/" in console(domain), "the guest has the address DHCP gave it"

step("stop, start: the same domain shut off, then booted again")
assert api.fdu.stop(instance) == instance and api.fdu.instance_info(instance)["status"] == "CONFIGURE"
eventually("shut off", lambda: virsh("domstate", domain) == "shut off", 60)
assert api.fdu.start(instance) == instance and api.fdu.instance_info(instance)["status"] == "RUN"
assert domains() == [domain] and virsh("domstate", domain) == "running"
eventually("booted again", lambda: console(domain).count("fos-guest serving http") == 2)
eventually("the guest at its address again", lambda: counter(ip) is not None, 60)

step("pause, resume: the guest goes on from where it was")
first = counter(ip)
assert first is not None
assert api.fdu.pause(instance) == instance and api.fdu.instance_info(instance)["status"] == "PAUSE"
assert virsh("domstate", domain) == "paused"
assert counter(ip) is None, "a paused guest does not answer"
assert api.fdu.resume(instance) == instance and api.fdu.instance_info(instance)["status"] == "RUN"
assert virsh("domstate", domain) == "running"
eventually("the resumed guest answering", lambda: counter(ip) is not None, 30)
assert counter(ip) >= first, "resumed, not rebooted"

step("terminate: no domain left; offload, image and network removed")
assert api.fdu.terminate(instance) == instance
assert domains() == [], domains()
assert "error" in api.fdu.instance_info(instance)
assert "result" in api.fdu.offload(fdu["uuid"])
assert api.fdu.list() == []
assert "result" in api.image.remove(image)
assert api.image.list() == []
assert "result" in api.network.remove_network(net["uuid"])
assert api.network.list() == []
print("ok", flush=True)
