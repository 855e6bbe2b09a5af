"""What the fog05rest driving scripts share: step headings, waiting, process liveness, an image added with its
sha256, the two nodes of a migration, and the hand-over to the test that looks at the cluster."""
import hashlib
import os
import time


def step(name):
    print(f"-- {name}", flush=True)


def alive(pid):
    """Whether process `pid` runs (exists and is not a zombie)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with open(f"/proc/{pid}/stat") as f:
        return f.read().split(") ")[1][0] != "Z"


def add_image(api, path, name, fmt):
    """Adds the file at `path` as image `name` with its sha256; returns (the image's uuid, the sha256)."""
    with open(path, "rb") as f:
        digest = hashlib.sha256(f.read()).hexdigest()
    image = api.image.add({"name": name, "uri": "", "checksum": digest, "format": fmt}, path)
    assert isinstance(image, str), image
    return image, digest


def eventually(what, check, timeout=60, every=0.2):
    """Waits until `check()` holds, failing after `timeout` seconds."""
    deadline = time.time() + timeout
    while not check():
        assert time.time() < deadline, f"timed out waiting for {what}"
        time.sleep(every)


def two_nodes(api, hypervisor):
    """The ids of nodes `n0` and `n1`, both offering `hypervisor`."""
    nodes = {api.node.info(n)["name"]: n for n in api.node.list()}
    assert sorted(nodes) == ["n0", "n1"], nodes
    for n in nodes.values():
        assert hypervisor in [api.plugin.info(n, p)["name"] for p in api.node.plugins(n)], n
    return nodes["n0"], nodes["n1"]


def hand_over(marks, instance):
    """Writes MARKS/migrated (the instance's uuid), then waits for the test to write MARKS/checked."""
    with open(os.path.join(marks, "migrated.tmp"), "w") as f:
        f.write(instance)
    os.rename(os.path.join(marks, "migrated.tmp"), os.path.join(marks, "migrated"))
    eventually("the test to look", lambda: os.path.exists(os.path.join(marks, "checked")), 120, 0.1)
