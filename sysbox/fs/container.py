"""What sysbox-fs knows of one container: its ids, namespaces, emulated state and guards."""

from __future__ import annotations

import os
import uuid
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from sysbox.fs import cgroupview
from sysbox.fs.clock import host_uptime
from sysbox.fs.mounts import MOUNTS
from sysbox.linux import mountinfo


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
    mountpoint: str = ""  # where its FUSE connection is mounted on the host (connections.py)
    persist: Any = None  # called after a write to an emulated node (recovery.keep_state)
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
            from sysbox.fs import sysfsview

            sysfsview.mount_devices_virtual(self.ns_fds, self.sysfs_path)
            self.sysfs = self.sysfs_path
        return self.sysfs

    def close(self) -> None:
        # By path, not by self.sysfs: a container recovered after a restart may have its view
        # mounted by the sysbox-fs that was killed, which this process never mounted itself.
        path = self.sysfs or self.sysfs_path
        if path and os.path.isdir(path):
            from sysbox.linux.tree import detach_all

            try:
                detach_all(path)
                os.rmdir(path)
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
