"""Containers known to sysbox-fs, and which one a FUSE request comes from.

A request is answered for the container of the process that made it: the kernel gives us
the caller's pid, and the caller's user namespace (each sysbox container has its own) names
the container.  Nothing the container sends is trusted for that.  Inner containers (Docker
inside) share the outer container's user namespace, so they get its view; a process in a
nested user namespace is matched through its parent namespaces.
"""

from __future__ import annotations

import fcntl
import os
import time
import uuid
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from sysbox.fs import cgroupview
from sysbox.fs.mounts import MOUNTS
from sysbox.linux import mountinfo
from sysbox.linux.ns import NS_GET_PARENT, owner_ino

CLK_TCK = os.sysconf("SC_CLK_TCK")


def host_uptime() -> float:
    """Seconds since boot, on the clock /proc/uptime and process start times count in
    (CLOCK_BOOTTIME): a vDSO call instead of a file read on every /proc/uptime open."""
    return time.clock_gettime(time.CLOCK_BOOTTIME)


class Immutables(NamedTuple):
    """Mount ids, in the container's initial mount namespace, of what it may not undo."""
    ids: frozenset[int]        # the masks, read-only paths, /proc, /sys and sysbox-fs nodes
    readonly: frozenset[int]   # those of them mounted read-only
    parents: frozenset[int]    # mounts with immutable children (a bind needs MS_REC)
    ro_ancestors: frozenset[int]  # mounts above a read-only immutable (AT_RECURSIVE setattr)


# Always immutable: the kernel filesystems and every sysbox-fs node.
BASE_IMMUTABLE = ("/proc", "/sys", *(dest for _src, dest, _how, _needs in MOUNTS))


@dataclass
class Container:
    id: str
    pid: int
    uid: int
    gid: int
    size: int
    userns: int
    started: float                      # host uptime (s) when the container's init started
    ns_fds: dict[str, int]              # net, ipc, uts, user: for passthrough in its namespaces
    cgroups: cgroupview.CgroupView
    sysctl: dict[str, bytes] = field(default_factory=dict)   # emulated /proc/sys values written
    files: dict[str, bytes] = field(default_factory=dict)    # other writable emulated files
    boot_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    load: list[float] = field(default_factory=lambda: [0.0, 0.0, 0.0])
    load_tasks: tuple[int, int] = (0, 0)
    masked: list[str] = field(default_factory=list)  # paths under /proc masked in the container
    # /sys/devices/virtual of a sysfs mounted in the container's network namespace (its net
    # devices): where it goes, and where it is once mounted (at first need: devices_virtual())
    sysfs_path: str | None = None
    sysfs: str | None = None
    mntns: int = 0  # inode of its init's mount namespace: the one whose immutable mounts we guard
    # net/ipc/uts -> does the container's user namespace own it?  Not for a namespace joined by
    # path that the host made (docker --network host, a pod's netns): writes there are judged
    # by the kernel as the container's root's, and refused.
    owned: dict[str, bool] = field(default_factory=dict)
    immutable_paths: tuple[str, ...] = BASE_IMMUTABLE
    _immutables: Immutables | None = None

    def immutables(self) -> Immutables:
        """Computed at first need from init's mountinfo (the late /proc/sys node is attached
        after registration); `forget_mounts` after nodes are re-attached."""
        if self._immutables is None:
            mounts = mountinfo.read(self.pid)
            wanted = set(self.immutable_paths)
            ids = {m.id for m in mounts if m.point in wanted}
            ro = {m.id for m in mounts if m.id in ids and "ro" in m.options.split(",")}
            parents = {m.parent for m in mounts if m.id in ids}
            up = {m.id: m.parent for m in mounts}
            above: set[int] = set()
            for mid in ro:
                parent = up.get(mid)
                while parent is not None and parent in up and parent not in above:  # each step adds one: it ends
                    above.add(parent)
                    parent = up[parent]
            self._immutables = Immutables(frozenset(ids), frozenset(ro), frozenset(parents), frozenset(above))
        return self._immutables

    def forget_mounts(self) -> None:
        self._immutables = None

    def uptime(self) -> float:
        return max(0.0, host_uptime() - self.started)

    def devices_virtual(self) -> str | None:
        """The container's own /sys/devices/virtual, mounted at the first read that needs it
        (most containers never read it: registering stays cheap).  None without a state dir;
        an OSError if it cannot be mounted (the read fails rather than show the host's)."""
        if self.sysfs is None and self.sysfs_path:
            _mount_devices_virtual(self, self.sysfs_path)
            self.sysfs = self.sysfs_path
        return self.sysfs

    def close(self) -> None:
        if self.sysfs:
            from sysbox.linux import syscalls as sc

            try:
                sc.umount2(self.sysfs, sc.MNT_DETACH)
                os.rmdir(self.sysfs)
            except OSError:
                pass
            self.sysfs = None
        for fd in self.ns_fds.values():
            os.close(fd)
        self.ns_fds = {}
        self.cgroups.close()

    def public(self) -> dict[str, Any]:
        return {"id": self.id, "pid": self.pid, "uid": self.uid, "gid": self.gid, "size": self.size,
                "uptime": round(self.uptime(), 2), "sysctl_writes": len(self.sysctl) + len(self.files)}


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
        self.host_userns = os.stat("/proc/self/ns/user").st_ino

    def add(self, cid: str, pid: int, uid: int, gid: int, size: int, masked: list[str] | None = None,
            immutable: list[str] | None = None) -> Container:
        if cid in self.by_id:
            self.remove(cid)
        userns = os.stat(f"/proc/{pid}/ns/user").st_ino
        if userns == self.host_userns:
            raise ValueError(f"pid {pid} is in the host's user namespace, not a system container")
        fds = {}
        try:
            for ns in ("net", "ipc", "uts", "user"):
                fds[ns] = os.open(f"/proc/{pid}/ns/{ns}", os.O_RDONLY | os.O_CLOEXEC)
            owned = {ns: owner_ino(f"/proc/self/fd/{fds[ns]}") == userns for ns in ("net", "ipc", "uts")}
            c = Container(cid, pid, uid, gid, size, userns, _started(pid) / CLK_TCK, fds,
                          cgroupview.CgroupView.of(pid), masked=list(masked or []),
                          mntns=os.stat(f"/proc/{pid}/ns/mnt").st_ino, owned=owned,
                          immutable_paths=BASE_IMMUTABLE + tuple(immutable or ()))
        except BaseException:
            for fd in fds.values():
                os.close(fd)
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
            ino = os.stat(f"/proc/{pid}/ns/user").st_ino
        except OSError:
            return None
        c = self.by_userns.get(ino)
        if c is not None or ino == self.host_userns:
            return c
        return self._nested(pid)

    def _nested(self, pid: int) -> Container | None:
        try:
            fd = os.open(f"/proc/{pid}/ns/user", os.O_RDONLY | os.O_CLOEXEC)
        except OSError:
            return None
        try:
            for _ in range(32):
                parent = fcntl.ioctl(fd, NS_GET_PARENT)
                os.close(fd)
                fd = parent
                ino = os.fstat(fd).st_ino
                if ino in self.by_userns:
                    return self.by_userns[ino]
                if ino == self.host_userns:
                    return None
        except OSError:
            return None
        finally:
            os.close(fd)
        return None


def _mount_devices_virtual(c: Container, path: str) -> None:
    """/sys/devices/virtual as the container's network namespace shows it (sysfs shows the
    net devices of its mounter's namespace), bound under our state dir, read-only.  Only
    that subtree stays mounted: a whole sysfs on the host, in a directory a container's root
    cannot reach, would make runc's --no-pivot fail for every other container (it covers
    each full proc/sysfs mount of the host, and EACCES stops it)."""
    from sysbox.fs.nodes.mirror import in_namespaces
    from sysbox.linux import syscalls as sc
    from sysbox.linux.tree import detach_all

    full = path + ".full"
    for d in (path, full):
        os.makedirs(d, mode=0o700, exist_ok=True)
        detach_all(d)  # one left by a sysbox-fs that was killed: not stacked again

    def mount() -> None:
        sc.mount("sysfs", full, "sysfs", sc.MS_RDONLY | sc.MS_NOSUID | sc.MS_NODEV | sc.MS_NOEXEC)
        try:
            sc.mount(os.path.join(full, "devices", "virtual"), path, "", sc.MS_BIND)
        finally:
            sc.umount2(full, sc.MNT_DETACH)

    in_namespaces(c, ("net",), mount)
    os.rmdir(full)
