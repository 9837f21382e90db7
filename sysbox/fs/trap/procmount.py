"""Mounting a procfs for a process inside a container, with sysbox-fs's nodes on top.

When an inner Docker, systemd or a nested container mounts /proc, the kernel would give it
the host's uptime, meminfo and /proc/sys.  We perform that mount for the caller instead: in a
forked child that enters the caller's mount namespace, chroots to the caller's root and
changes to its working directory (so the target path is resolved exactly as the kernel would
resolve it for the caller, never on the host), then forks once more to enter its pid
namespace (procfs shows the mounter's pid namespace), mounts proc and moves clones of the
FUSE nodes onto it.  Masked paths of the container stay masked in the new instance.
"""

from __future__ import annotations

import errno
import os

from sysbox.fs.mounts import MOUNTS
from sysbox.linux import syscalls as sc

MS_RDONLY = 1
MS_BIND = 4096


def _nodes(mountpoint: str, readonly: bool) -> list[tuple[int, str]]:
    """Detached clones of the FUSE nodes that live under /proc, with their place in a procfs."""
    clones = []
    for src, dest, _how, _needs in MOUNTS:
        if not dest.startswith("/proc/"):
            continue
        fd = sc.open_tree(os.path.join(mountpoint, src), sc.OPEN_TREE_CLONE | sc.OPEN_TREE_CLOEXEC)
        if readonly:
            sc.mount_setattr(fd, attr_set=sc.MOUNT_ATTR_RDONLY)
        clones.append((fd, dest[len("/proc/"):]))
    return clones


def _in_mount(target: str, flags: int, data: str, clones: list[tuple[int, str]], masked: list[str]) -> int:
    try:
        sc.mount("proc", target, "proc", flags, data)
        if target.startswith("/proc/self/fd/"):
            # A magic link names the directory under the new mount; its path crosses into it.
            target = os.readlink(target)
    except OSError as e:
        return e.errno or errno.EIO
    try:
        for fd, rel in clones:
            sc.move_mount(fd, os.path.join(target, rel))
        for rel in masked:
            path = os.path.join(target, rel)
            if os.path.isdir(path):
                sc.mount("tmpfs", path, "tmpfs", MS_RDONLY)
            elif os.path.exists(path):
                sc.mount("/dev/null", path, "", MS_BIND)
    except OSError as e:
        sc.umount2(target, sc.MNT_DETACH)
        return e.errno or errno.EIO
    return 0


def _enter(fds: dict[str, int]) -> None:
    """In a forked child: the caller's mount namespace, root and working directory."""
    sc.setns(fds["mnt"], sc.CLONE_NEWNS)
    os.fchdir(fds["root"])
    os.chroot(".")
    os.fchdir(fds["cwd"])


def _open_ns(pid: int, names: tuple[str, ...]) -> dict[str, int]:
    paths = {"mnt": "ns/mnt", "pid": "ns/pid", "root": "root", "cwd": "cwd"}
    fds: dict[str, int] = {}
    try:
        for name in names:
            fds[name] = os.open(f"/proc/{pid}/{paths[name]}", os.O_RDONLY | os.O_CLOEXEC)
    except BaseException:
        for fd in fds.values():
            os.close(fd)
        raise
    return fds


def _self_target(pid: int, target: str) -> tuple[str, int | None]:
    """Targets like /proc/self/fd/4 (systemd mounts through an O_PATH fd) name the caller's
    objects: open them through the caller's pid and hand the helper an fd to the same object.
    The kernel follows the magic link to what the caller holds, so nothing is resolved on the
    host's terms.  The helper reaches it as /proc/self/fd/N from inside the caller's pid
    namespace."""
    for prefix in ("/proc/self/", "/proc/thread-self/"):
        if target.startswith(prefix):
            fd = os.open(f"/proc/{pid}/{target[len(prefix):]}", os.O_PATH | os.O_CLOEXEC)
            return f"/proc/self/fd/{fd}", fd
    return target, None


def has_emulated_proc(pid: int) -> bool:
    """Cheap test from the host: does the caller see a procfs carrying our nodes, other than
    its own /proc (which the container cannot unmount anyway)?"""
    from sysbox.linux import mountinfo

    mounts = mountinfo.read(pid)
    procs = {m.id for m in mounts if m.fstype == "proc" and m.point != "/proc"}
    return any(m.parent in procs and m.fstype.startswith("fuse.sysboxfs") for m in mounts)


def _in_umount(target: str, flags: int, mounts: list) -> int:
    """In the caller's root: `mounts` is the caller's mountinfo, whose paths are relative to it."""
    path = os.path.realpath(target)
    top = None
    for m in mounts:
        if m.point == path:
            top = m
    if top is None or top.fstype != "proc":
        return -1  # not an emulated procfs: let the kernel do it
    children = [m for m in mounts if m.parent == top.id]
    if not any(m.fstype.startswith("fuse.sysboxfs") for m in children):
        return -1  # a procfs we did not mount
    try:
        for m in children:
            sc.umount2(m.point, sc.MNT_DETACH)
        sc.umount2(path, flags)
    except OSError as e:
        return e.errno or errno.EIO
    return 0


def umount_proc(pid: int, target: str, flags: int) -> int:
    """Unmount an emulated procfs with the nodes on it: 0, an errno, or -1 for "not ours"."""
    from sysbox.linux import mountinfo

    mounts = mountinfo.read(pid)  # the helper is not in the caller's pid namespace: read it here
    fds = _open_ns(pid, ("mnt", "root", "cwd"))
    try:
        child = os.fork()
        if child == 0:
            code = errno.EIO
            try:
                _enter(fds)
                code = _in_umount(target, flags, mounts)
            except OSError as e:
                code = e.errno or errno.EIO
            finally:
                os._exit(code & 0xFF)
        _, status = os.waitpid(child, 0)
        code = os.waitstatus_to_exitcode(status)
        return -1 if code == 255 else code
    finally:
        for fd in fds.values():
            os.close(fd)


def mount_proc(pid: int, target: str, flags: int, data: str, mountpoint: str, masked: list[str]) -> int:
    """Mount proc at `target` as process `pid` sees it; returns 0 or an errno."""
    clones = _nodes(mountpoint, bool(flags & MS_RDONLY))
    fds: dict[str, int] = {}
    target, target_fd = _self_target(pid, target)
    if target_fd is not None:
        fds["target"] = target_fd
    try:
        fds.update(_open_ns(pid, ("mnt", "pid", "root", "cwd")))
        child = os.fork()
        if child == 0:
            code = errno.EIO
            try:
                sc.setns(fds["pid"], 0x20000000)  # CLONE_NEWPID: for the grandchild below
                _enter(fds)
                grandchild = os.fork()
                if grandchild == 0:
                    os._exit(_in_mount(target, flags, data, clones, masked))
                _, status = os.waitpid(grandchild, 0)
                code = os.waitstatus_to_exitcode(status)
            except OSError as e:
                code = e.errno or errno.EIO
            finally:
                os._exit(code)
        _, status = os.waitpid(child, 0)
        return os.waitstatus_to_exitcode(status)
    finally:
        for fd in list(fds.values()) + [fd for fd, _ in clones]:
            os.close(fd)
