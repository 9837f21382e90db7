"""/proc/cpuinfo listing only the container's CPUs, renumbered from 0."""

from __future__ import annotations

import time

from sysbox.fs.container import Container
from sysbox.fs.nodes import File, host_read
from sysbox.fs.nodes.sys_cpu_online import online_cpus

HOST_TTL = 0.1  # seconds the host's cpuinfo is shared between the containers' reads
_host: tuple[float, list[str]] = (-1.0, [])


def host_blocks() -> list[str]:
    """The host's cpuinfo, one block per CPU, read once per HOST_TTL for every container."""
    global _host
    now = time.monotonic()
    if now - _host[0] >= HOST_TTL:
        _host = (now, [b for b in host_read("/proc/cpuinfo").decode().split("\n\n") if b.strip()])
    return _host[1]


class Cpuinfo(File):
    def read(self, c: Container) -> bytes:
        allowed = c.cgroups.cpus(online_cpus())
        out = []
        for block in host_blocks():
            first = block.split("\n", 1)[0]
            if not first.startswith("processor"):
                out.append(block)
                continue
            n = int(first.split(":")[1])
            if n in allowed:
                out.append(block.replace(first, f"processor\t: {allowed.index(n)}", 1))
        return ("\n\n".join(out) + "\n\n").encode()
