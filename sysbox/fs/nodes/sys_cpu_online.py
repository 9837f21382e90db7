"""/sys/devices/system/cpu/online: the CPUs the container may use (cpuset, cut to its quota)."""

from __future__ import annotations

import time

from sysbox.fs.cgroupview import format_cpus, parse_cpus
from sysbox.fs.container import Container
from sysbox.fs.nodes import File, host_read

_online: tuple[float, list[int]] = (-1.0, [])
ONLINE_TTL = 1.0  # seconds; CPU hotplug is rare, and uptime/stat/cpuinfo ask on every read


def online_cpus() -> list[int]:
    """The host's online CPUs, re-read at most once a second."""
    global _online
    now = time.monotonic()
    if now - _online[0] >= ONLINE_TTL:
        _online = (now, parse_cpus(host_read("/sys/devices/system/cpu/online").decode()))
    return list(_online[1])


class Online(File):
    def read(self, c: Container) -> bytes:
        return (format_cpus(list(range(len(c.cgroups.cpus(online_cpus()))))) + "\n").encode()
