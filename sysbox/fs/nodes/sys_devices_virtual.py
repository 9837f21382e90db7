"""/sys/devices/virtual: the container's own (its network devices), plus a DMI product_uuid
that is unique and stable per container.

The mirror reads a sysfs that sysbox-fs mounted inside the container's network namespace
(sysbox.fs.registry), so /sys/class/net/eth0 -> ../../devices/virtual/net/eth0 still resolves
to the container's eth0.  dmi/id/product_uuid is added even on hosts without DMI (VMs): tools
like kubeadm and systemd read it as a machine identity, and containers must not share one.
"""

from __future__ import annotations

import hashlib
from typing import ClassVar

from sysbox.fs.container import Container
from sysbox.fs.nodes.mirror import Entry, HostMirror

HOST_UUID = "/sys/class/dmi/id/product_uuid"


def product_uuid(cid: str) -> str:
    """The host's UUID with its last 12 hex digits taken from the container id."""
    try:
        with open(HOST_UUID) as f:
            host = f.read().strip()
    except OSError:
        host = "00000000-0000-0000-0000-000000000000"
    tail = cid.lower() if len(cid) >= 12 and all(ch in "0123456789abcdef" for ch in cid.lower()[:12]) \
        else hashlib.sha256(cid.encode()).hexdigest()
    return host[:24] + tail[:12]


class ProductUuid(Entry):
    mode = 0o444

    def read(self, c: Container, rel: str) -> bytes:
        return f"{product_uuid(c.id)}\n".encode()


class DevicesVirtual(HostMirror):
    base = "/sys/devices/virtual"
    emulated: ClassVar[dict[str, Entry]] = {"dmi/id/product_uuid": ProductUuid()}

    def root(self, c: Container | None) -> str:
        return (c.devices_virtual() if c is not None else None) or self.base
