"""/sys/devices/system/cpu/online: the CPUs the container may use (cpuset, cut to its quota)."""

from __future__ import annotations

from sysbox.fs.cgroupview import format_cpus, parse_cpus
from sysbox.fs.container import Container
from sysbox.fs.nodes import File, shared_host

ONLINE_TTL = 1.0  # seconds; CPU hotplug is rare, and uptime/stat/cpuinfo ask on every read


def online_cpus() -> list[int]:
    """The host's online CPUs, re-read at most once a second."""
    return list(shared_host("/sys/devices/system/cpu/online", ONLINE_TTL, lambda b: parse_cpus(b.decode())))


class Online(File):
    def read(self, c: Container) -> bytes:
        return (format_cpus(list(range(len(c.cgroups.cpus(online_cpus()))))) + "\n").encode()
