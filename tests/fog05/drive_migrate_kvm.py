"""Migrates a KVM FDU (a VM) live between two fos nodes' libvirt daemons with the fog05rest client (0.0.4).

Usage: drive_migrate_kvm.py ADDRESS MARKS_DIR DISK_IMAGE LIBVIRT_A LIBVIRT_B NETNS_B. Runs where ADDRESS is
reachable (node A's namespace). The disk (the test guest, bootable) is added as an image with its sha256 through node
A; the FDU (`migration_kind: LIVE`, one interface on a fog05 network with DHCP) refers to it by the descriptor
`image.get` answers. It is instantiated on node A (`n0`), and once its guest counts on its serial console and answers
at its address, migrated to node B (`n1`) with `api.fdu.migrate`: the domain then runs in B's libvirtd only, the
guest's counter goes on on B's console with no second boot, and it answers at the same address on B's side of the
network (asked from B's namespace). Then
(once the test has looked at the cluster: it writes MARKS_DIR/checked after this script wrote MARKS_DIR/migrated)
terminated and offloaded, the image removed: no domain left in either daemon. Every step asserts what it gets;
prints `ok` at the end.
"""
import re
import subprocess
import sys
import uuid

from fog05rest import FIMAPI

from common import step, add_image, eventually, hand_over, two_nodes

addr, marks, disk, libvirt_a, libvirt_b, netns_b = sys.argv[1:7]
api = FIMAPI(locator=addr)


def virsh(uri, *args):
    out = subprocess.run(["virsh", "-q", "-c", uri, *args], capture_output=True, text=True)
    return out.stdout.strip()


def domains(uri):
    return [d for d in virsh(uri, "list", "--all", "--name").splitlines() if d]


def console(uri, domain):
    """What the guest printed on its serial console on that daemon's node (the file the domain writes it to)."""
    path = re.search(r"<serial type='file'>\s*<source path='([^']+)'", virsh(uri, "dumpxml", domain)).group(1)
    with open(path, errors="replace") as f:
        return f.read()


def counters(text):
    return [int(n) for n in re.findall(r"^fos-guest counter (\d+)", text, re.M)]


def http_counter(ip, netns=None):
    """The guest's HTTP counter at `ip` (from this namespace, or from `netns`), or None."""
    cmd = ["curl", "-s", "-f", "-m", "2", "--noproxy", "*", f"http://{ip}/counter"]
    if netns:
        cmd = ["ip", "netns", "exec", netns, *cmd]
    out = subprocess.run(cmd, capture_output=True, text=True)
    try:
        return int(out.stdout.strip())
    except ValueError:
        return None


step("two nodes offering KVM")
a, b = two_nodes(api, "KVM")

step("the guest's disk added as an image with its sha256 through n0")
image, digest = add_image(api, disk, "fos-guest", "raw")
assert api.image.get(image)["checksum"] == digest

step("a network, a KVM FDU (migration_kind LIVE) with one interface on it, instantiated on n0")
net = {"uuid": str(uuid.uuid4()), "name": "movenet", "net_type": "ELAN", "is_mgmt": False,
       "ip_configuration": {"ip_version": "IPV4", "subnet": "10.204.9.0/24", "gateway": "10.204.9.1",
                            "dhcp_enable": True, "dhcp_range": "", "dns": ""}}
assert "result" in api.network.add_network(net)
mac = "be:ef:be:ef:00:09"
fdu = {"uuid": str(uuid.uuid4()), "name": "guest_mover",
       "computation_requirements": {"cpu_arch": api.node.info(a)["cpu"][0]["arch"], "cpu_min_freq": 0,
                                    "cpu_min_count": 1, "ram_size_mb": 128.0, "storage_size_gb": 1.0},
       "image": api.image.get(image), "hypervisor": "KVM", "migration_kind": "LIVE",
       "interfaces": [{"name": "eth0", "is_mgmt": False, "if_type": "INTERNAL", "mac_address": mac,
                       "virtual_interface": {"intf_type": "VIRTIO", "vpci": "0:0:0", "bandwidth": 10},
                       "cp_id": "cp-mover"}],
       "io_ports": [], "connection_points": [{"uuid": "cp-mover", "pair_id": net["uuid"]}], "depends_on": []}
assert "result" in api.fdu.onboard(fdu), fdu
record = api.fdu.instantiate(fdu["uuid"], a)
instance = record["uuid"]
assert record["status"] == "RUN" and record["node"] == a, record
[domain] = domains(libvirt_a)
assert virsh(libvirt_a, "domstate", domain) == "running"
assert domains(libvirt_b) == []
eventually("the guest counting on n0", lambda: any(n >= 10 for n in counters(console(libvirt_a, domain))), 240)
assert console(libvirt_a, domain).count("fos-guest up") == 1
before = counters(console(libvirt_a, domain))[-1]
eth0 = api.fdu.instance_info(instance)["hypervisor_info"]["network"]["eth0"]
ip = eth0["addresses"][0]["address"]
assert eth0["hwaddr"] == mac and ip.startswith("10.204.9."), eth0
eventually("the guest answering at its address on n0", lambda: http_counter(ip) is not None, 120)
served = http_counter(ip)

step("migrated live to n1 by fog05rest's migrate: the same guest, running in n1's libvirtd only")
moved = api.fdu.migrate(instance, b)
assert moved["uuid"] == instance and moved["node"] == b and moved["status"] == "RUN", moved
info = api.fdu.instance_info(instance)
assert info["uuid"] == instance and info["node"] == b and info["status"] == "RUN", info
assert info["fdu_uuid"] == fdu["uuid"] and info["hypervisor"] == "KVM", info
assert api.fdu.instance_list(fdu["uuid"]) == {b: [instance]}
assert api.fdu.list_node(a) == [] and api.fdu.list_node(b) == [fdu["uuid"]]
[there] = domains(libvirt_b)
assert virsh(libvirt_b, "domstate", there) == "running"
eventually("the source's domain removed", lambda: domains(libvirt_a) == [], 60)
eventually("the guest counting on n1", lambda: any(n > before for n in counters(console(libvirt_b, there))), 120)
on_b = console(libvirt_b, there)
assert counters(on_b)[0] > before, f"the counter goes on from {before}:\n{on_b}"
assert "fos-guest up" not in on_b, f"the guest did not boot again on n1:\n{on_b}"
eth0 = api.fdu.instance_info(instance)["hypervisor_info"]["network"]["eth0"]
assert eth0["hwaddr"] == mac and eth0["addresses"][0]["address"] == ip, f"the same interface and address: {eth0}"
eventually("the guest answering at the same address on n1",
           lambda: (http_counter(ip, netns_b) or 0) > served, 120)

step("the test looks at the cluster")
hand_over(marks, instance)

step("terminated and offloaded, the image and the network removed: no domain left")
assert api.fdu.terminate(instance) == instance
assert domains(libvirt_a) == [] and domains(libvirt_b) == [], (domains(libvirt_a), domains(libvirt_b))
assert "error" in api.fdu.instance_info(instance)
assert "result" in api.fdu.offload(fdu["uuid"])
assert api.fdu.list() == []
assert "result" in api.image.remove(image)
assert api.image.list() == []
assert "result" in api.network.remove_network(net["uuid"])
assert api.network.list() == []
print("ok", flush=True)
