"""/proc/cpuinfo listing only the container's CPUs, renumbered from 0."""

from __future__ import annotations

from sysbox.fs.container import Container
from sysbox.fs.nodes import File, host_read
from sysbox.fs.nodes.sys_cpu_online import online_cpus


class Cpuinfo(File):
    def read(self, c: Container) -> bytes:
        allowed = c.cgroups.cpus(online_cpus())
        blocks = [b for b in host_read("/proc/cpuinfo").decode().split("\n\n") if b.strip()]
        out = []
        for block in blocks:
            first = block.splitlines()[0]
            if not first.startswith("processor"):
                out.append(block)
                continue
            n = int(first.split(":")[1])
            if n in allowed:
                out.append(block.replace(first, f"processor\t: {allowed.index(n)}", 1))
        return ("\n\n".join(out) + "\n\n").encode()
