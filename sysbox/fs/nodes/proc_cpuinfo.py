"""/proc/cpuinfo listing only the container's CPUs, renumbered from 0."""

from __future__ import annotations

from sysbox.fs.container import Container
from sysbox.fs.nodes import File, shared_host
from sysbox.fs.nodes.sys_cpu_online import online_cpus

HOST_TTL = 0.1  # seconds the host's cpuinfo is shared between the containers' reads


def host_blocks() -> list[str]:
    """The host's cpuinfo, one block per CPU."""
    return shared_host("/proc/cpuinfo", HOST_TTL,
                       lambda raw: [b for b in raw.decode().split("\n\n") if b.strip()])


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
