"""The dev-VM store: images (one OCI layout) and one directory per container, on disk.

<root>/images/oci            OCI layout filled by skopeo, tags named after the source
<root>/images/sources.json   source path -> (size, mtime, tag), to skip a second import
<root>/containers/<name>/    bundle (umoci's config.json + rootfs), meta.json, console.log
<root>/cni/                  host-local IPAM leases
A flock on <root>/lock serialises CLI invocations that change the store.
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


class Store:
    def __init__(self, root: str = DEFAULT_ROOT) -> None:
        self.root = os.path.abspath(root)
        self.images = os.path.join(self.root, "images")
        self.oci = os.path.join(self.images, "oci")
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

    def load(self, name: str) -> dict[str, Any]:
        try:
            with open(os.path.join(self.cdir(name), "meta.json")) as f:
                return json.load(f)
        except FileNotFoundError:
            raise SysboxError(f"no such container: {name}") from None

    def save(self, meta: dict[str, Any]) -> None:
        d = self.cdir(meta["name"])
        os.makedirs(d, mode=0o711, exist_ok=True)
        tmp = os.path.join(d, "meta.json.tmp")
        with open(tmp, "w") as f:
            json.dump(meta, f, indent=1)
        os.replace(tmp, os.path.join(d, "meta.json"))

    def names(self) -> list[str]:
        try:
            return sorted(n for n in os.listdir(self.containers)
                          if os.path.exists(os.path.join(self.containers, n, "meta.json")))
        except FileNotFoundError:
            return []
