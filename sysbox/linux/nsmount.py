"""Kernel filesystems of a namespace the container joins but does not own.

A container that joins an existing network namespace (a Kubernetes pod's, made by the CRI
runtime as host root) cannot mount sysfs for it from inside its own user namespace: sysfs
and mqueue mounts need CAP_SYS_ADMIN over the namespace's owner.  Host root has it, so a
forked helper enters the namespace and mounts the filesystem on a host path, and the spec
binds that path instead.  The files show as nobody inside (owned by host root).
"""

from __future__ import annotations

import os

from sysbox.linux import mountinfo, ns
from sysbox.linux import syscalls as sc
from sysbox.typing_lite import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Callable

KINDS = {"network": ("net", "sysfs"), "ipc": ("ipc", "mqueue")}


def _in_child(ns_path: str, kind: str, action: Callable[[], None]) -> int:
    """In a forked child, enter the `kind` namespace at `ns_path` (ns.enter) and run `action`;
    returns its errno (0 on success)."""
    fds = {kind: os.open(ns_path, os.O_RDONLY | os.O_CLOEXEC)}

    def child() -> int:
        ns.enter(fds, (kind,))
        action()
        return 0

    try:
        return ns.fork_and_wait(child)
    finally:
        ns.close_all(fds)


def mount_for(ns_type: str, ns_path: str, target: str) -> None:
    """Mount the filesystem that belongs to namespace `ns_path` (network: sysfs, ipc: mqueue)
    at `target`, in our own mount namespace."""
    kind, fstype = KINDS[ns_type]
    code = _in_child(ns_path, kind, lambda: sc.mount(fstype, target, fstype, sc.MS_NOSUID | sc.MS_NODEV | sc.MS_NOEXEC))
    if code != 0:
        raise OSError(code, f"{fstype} for {ns_path}: {os.strerror(code)}")


def _stacked(pid: int, dest: str, fstype: str) -> int:
    """How many `fstype` mounts are stacked at `dest` in pid's mount namespace (read from the
    host side: in the container's /proc our own pid does not exist)."""
    return sum(1 for m in mountinfo.read(pid) if m.point == dest and m.fstype == fstype)


def move_into(pid: int, source: str, dest: str, replace: str | None = None) -> None:
    """Clone the mount tree at host path `source` and attach it at `dest` inside the mount
    namespace of `pid`, on top of whatever is there (first detaching the `replace` fstype's
    mounts there, if given).  The forked child's setns resets its root to the container's, so
    `dest` is resolved inside the container, never on the host."""
    stale = _stacked(pid, dest, replace) if replace else 0
    fd = sc.open_tree(source, sc.OPEN_TREE_CLONE | sc.OPEN_TREE_CLOEXEC)

    def attach() -> None:
        for _ in range(stale):  # umount resolves without revalidating: dead mounts go too
            sc.umount2(dest, sc.MNT_DETACH)
        sc.move_mount(fd, dest)

    try:
        code = _in_child(f"/proc/{pid}/ns/mnt", "mnt", attach)
    finally:
        os.close(fd)
    if code != 0:
        raise OSError(code, f"attaching {source} at {dest} in pid {pid}'s mount namespace: {os.strerror(code)}")


def write_sysctl(ns_type: str, ns_path: str, knob: str, value: str) -> int:
    """Write one sysctl inside the namespace at ns_path (as host root, for the caller that made
    that namespace); returns 0 or the kernel's errno."""
    path = "/proc/sys/" + knob.replace(".", "/")

    def write() -> None:
        fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
        try:
            os.write(fd, value.encode())
        finally:
            os.close(fd)

    return _in_child(ns_path, {"network": "net"}.get(ns_type, ns_type), write)
