"""What the fog05rest driving scripts share: step headings, process liveness, an image added with its sha256."""
import hashlib
import os


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
