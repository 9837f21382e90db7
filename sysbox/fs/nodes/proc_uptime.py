"""/proc/uptime: time since the container started; idle time scaled to the container's CPUs."""

from __future__ import annotations

from sysbox.fs.container import Container
from sysbox.fs.nodes import File
from sysbox.fs.nodes.sys_cpu_online import online_cpus


class Uptime(File):
    def read(self, c: Container) -> bytes:
        up = c.uptime()
        ncpu = len(c.cgroups.cpus(online_cpus()))
        busy = sum(u + s for u, s in c.cgroups.cpu_usage().values()) / 1e9
        idle = max(0.0, up * ncpu - busy)
        return f"{up:.2f} {idle:.2f}\n".encode()
