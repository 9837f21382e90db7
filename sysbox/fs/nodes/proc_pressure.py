"""/proc/pressure/{cpu,io,memory,irq}: pressure stall information of the container's cgroup.

A container's tools (systemd-oomd, lmkd-style monitors, `below`, k8s node agents inside a
node container) read /proc/pressure for their own machine; the host-wide figures would make
them act on a neighbour's load.  The cgroup v2 directory of the container keeps the same
figures for its own tasks (PSI is kept per cgroup, in the same format).  A container without
one (or a file its cgroup lacks) reads the host's, as it would without sysbox-fs.
Read-only: triggers (writes) are not emulated.
"""

from __future__ import annotations

import errno
import os

from sysbox.fs.container import Container
from sysbox.fs.nodes import Stat, Subtree, host_read

HOST = "/proc/pressure"


def kinds() -> list[str]:
    try:
        return sorted(os.listdir(HOST))
    except OSError:
        return []


class Pressure(Subtree):
    def __init__(self) -> None:
        self.kinds = kinds()

    def stat(self, rel: str, c: Container | None) -> Stat | None:
        if rel == "":
            return Stat(True, 0o555)
        return Stat(False, 0o444) if rel in self.kinds else None

    def listdir(self, rel: str, c: Container | None) -> list[tuple[str, bool]]:
        if rel:
            raise OSError(errno.ENOTDIR, rel)
        return [(k, False) for k in self.kinds]

    def read(self, rel: str, c: Container) -> bytes:
        if rel not in self.kinds:
            raise OSError(errno.ENOENT, rel)
        own = c.cgroups.pressure(rel)
        return own.encode() if own else host_read(os.path.join(HOST, rel))
