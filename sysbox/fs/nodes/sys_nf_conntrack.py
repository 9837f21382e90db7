"""/sys/module/nf_conntrack/parameters: hashsize writable per container (kube-proxy sets it)."""

from __future__ import annotations

from typing import ClassVar

from sysbox.fs.container import Container
from sysbox.fs.nodes import parse_int
from sysbox.fs.nodes.mirror import Entry, HostMirror

HOST = "/sys/module/nf_conntrack/parameters"


class Hashsize(Entry):
    def read(self, c: Container, rel: str) -> bytes:
        if rel in c.files:
            return c.files[rel]
        with open(f"{HOST}/{rel}", "rb") as f:
            return f.read()

    def write(self, c: Container, rel: str, data: bytes) -> None:
        c.files[rel] = f"{parse_int(data, 1, 1 << 30)}\n".encode()


class Parameters(HostMirror):
    base = HOST
    emulated: ClassVar[dict[str, Entry]] = {"hashsize": Hashsize()}
