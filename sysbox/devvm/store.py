"""The dev-VM store: images (one OCI layout, each image unpacked once) and one directory per VM.

<root>/images/oci                 OCI layout filled by skopeo, tags named after the source
<root>/images/sources.json        source (path, size, mtime) -> tag, to skip a second import
<root>/images/layers/<tag>/       rootfs (umoci's unpack, shared read-only by every VM of the
                                  image) and config.json (the image's runtime spec)
<root>/containers/<name>/         meta.json, bundle/ (config.json, rootfs = the VM's overlay),
                                  upper/ and work/ (what the VM wrote), snapshots/<snap>/upper,
                                  console.log, runtime.log, known_hosts
<root>/cni/                       host-local IPAM leases
A flock on <root>/lock serialises CLI invocations that change the store.  Everything but the
path down to a rootfs is root-only.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
from collections.abc import Iterator
from typing import Any

from sysbox.errors import SysboxError

DEFAULT_ROOT = "/var/lib/sysbox/devvm"


def write_json(path: str, data: Any) -> None:
    """Replace `path` with `data` as JSON, atomically, readable by host root only."""
    tmp = path + ".tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(data, f, indent=1)
    os.replace(tmp, path)


class Store:
    def __init__(self, root: str = DEFAULT_ROOT) -> None:
        self.root = os.path.abspath(root)
        self.images = os.path.join(self.root, "images")
        self.oci = os.path.join(self.images, "oci")
        self.layers = os.path.join(self.images, "layers")
        self.containers = os.path.join(self.root, "containers")
        self.cni = os.path.join(self.root, "cni")

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        os.makedirs(self.root, mode=0o711, exist_ok=True)
        os.chmod(self.root, 0o711)  # container roots must traverse to their rootfs
        fd = os.open(os.path.join(self.root, "lock"), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    def cdir(self, name: str) -> str:
        return os.path.join(self.containers, name)

    def layer(self, tag: str) -> str:
        """An image's unpacked, shared directory (rootfs + config.json)."""
        return os.path.join(self.layers, tag)

    def snapshot_dir(self, name: str, snap: str = "") -> str:
        return os.path.join(self.cdir(name), "snapshots", snap) if snap else os.path.join(self.cdir(name), "snapshots")

    def exists(self, name: str) -> bool:
        return os.path.exists(os.path.join(self.cdir(name), "meta.json"))

    def load(self, name: str) -> dict[str, Any]:
        try:
            with open(os.path.join(self.cdir(name), "meta.json")) as f:
                return json.load(f)
        except FileNotFoundError:
            raise SysboxError(f"no such container: {name}") from None

    def save(self, meta: dict[str, Any]) -> None:
        d = self.cdir(meta["name"])
        os.makedirs(d, mode=0o711, exist_ok=True)
        write_json(os.path.join(d, "meta.json"), meta)

    def names(self) -> list[str]:
        try:
            return sorted(n for n in os.listdir(self.containers)
                          if os.path.exists(os.path.join(self.containers, n, "meta.json")))
        except FileNotFoundError:
            return []
