"""Containers known to sysbox-fs, and which one a FUSE request comes from.

A request is answered for the container of the process that made it: the kernel gives us
the caller's pid, and the caller's user namespace (each sysbox container has its own) names
the container.  Nothing the container sends is trusted for that.  Inner containers (Docker
inside) share the outer container's user namespace, so they get its view; a process in a
nested user namespace is matched through its parent namespaces.
"""

from __future__ import annotations

import os

from sysbox.fs import cgroupview
from sysbox.fs.clock import CLK_TCK
from sysbox.fs.container import BASE_IMMUTABLE, Container
from sysbox.linux.ns import close_all, ns_ino, open_ns_fds, owner_ino, user_ns_ancestors

__all__ = ["Container", "Registry"]


def _started(pid: int) -> int:
    from sysbox.linux.proc import start_time

    ticks = start_time(pid)
    if ticks is None:
        raise FileNotFoundError(f"/proc/{pid}/stat")
    return ticks


class Registry:
    def __init__(self, state_dir: str | None = None) -> None:
        self.state_dir = state_dir
        self.by_id: dict[str, Container] = {}
        self.by_userns: dict[int, Container] = {}
        self.host_userns = ns_ino("self", "user")

    def add(self, cid: str, pid: int, uid: int, gid: int, size: int, masked: list[str] | None = None,
            immutable: list[str] | None = None) -> Container:
        if cid in self.by_id:
            self.remove(cid)
        userns = ns_ino(pid, "user")
        if userns == self.host_userns:
            raise ValueError(f"pid {pid} is in the host's user namespace, not a system container")
        fds = open_ns_fds(pid, ("net", "ipc", "uts", "user"))
        try:
            owned = {kind: owner_ino(f"/proc/self/fd/{fds[kind]}") == userns for kind in ("net", "ipc", "uts")}
            c = Container(cid, pid, uid, gid, size, userns, _started(pid) / CLK_TCK, fds,
                          cgroupview.CgroupView.of(pid), masked=list(masked or []),
                          mntns=ns_ino(pid, "mnt"), owned=owned,
                          immutable_paths=BASE_IMMUTABLE + tuple(immutable or ()))
        except BaseException:
            close_all(fds)
            raise
        if self.state_dir:
            c.sysfs_path = os.path.join(self.state_dir, "sysfs", cid)
        self.by_id[cid] = c
        self.by_userns[userns] = c
        return c

    def remove(self, cid: str) -> bool:
        c = self.by_id.pop(cid, None)
        if c is None:
            return False
        self.by_userns.pop(c.userns, None)
        c.close()
        return True

    def caller(self, pid: int) -> Container | None:
        """The container a process belongs to, from its user namespace (or an ancestor's)."""
        try:
            ino = ns_ino(pid, "user")
        except OSError:
            return None
        c = self.by_userns.get(ino)
        if c is not None or ino == self.host_userns:
            return c
        return self._nested(pid)

    def _nested(self, pid: int) -> Container | None:
        for ino in user_ns_ancestors(pid):
            if ino in self.by_userns:
                return self.by_userns[ino]
            if ino == self.host_userns:
                return None
        return None
