"""/sys/devices/system/cpu/online: the CPUs the container may use (cpuset, cut to its quota)."""

from __future__ import annotations

from sysbox.fs.cgroupview import format_cpus, parse_cpus
from sysbox.fs.nodes import File, host_read
from sysbox.fs.registry import Container


def online_cpus() -> list[int]:
    return parse_cpus(host_read("/sys/devices/system/cpu/online").decode())


class Online(File):
    def read(self, c: Container) -> bytes:
        return (format_cpus(list(range(len(c.cgroups.cpus(online_cpus()))))) + "\n").encode()
