"""Checks for the trapped calls that could undo what the kernel cannot lock for us.

Two families, both answered with an errno or NOT_OURS (CONTINUE: the kernel runs the call):

- The new mount API reaches the same mounts as mount(2): open_tree(OPEN_TREE_CLONE) without
  AT_RECURSIVE copies a mount without the masks on it, move_mount moves one away,
  mount_setattr clears MOUNT_ATTR_RDONLY, fsopen("proc") builds a procfs that bypasses the
  emulation.  Each gets the answer its mount(2) twin gets.
- Volumes: on an idmapped bind of a host directory, container root is host root, so a setuid
  or setgid file, or a file capability, made there would be a host-root privilege on the
  host.  chmod/creat/open/mknod with S_ISUID (or S_ISGID on a non-directory) and setxattr of
  security.capability are refused there with EPERM.  The container's own root filesystem is
  its own (as for any runtime), and so are the special dirs (not idmapped: owned in range).

Paths are resolved by a helper inside the caller's mount namespace, root and cwd; a dirfd or
fd argument is taken from the caller's own fd table (/proc/PID/fd/N).
"""

from __future__ import annotations

import errno
import os
import stat
import struct

from sysbox.fs.trap import procmount
from sysbox.linux import mountinfo, ns

AT_FDCWD = -100
AT_SYMLINK_NOFOLLOW = 0x100
AT_EMPTY_PATH = 0x1000
AT_RECURSIVE = 0x8000
OPEN_TREE_CLONE = 1
MOVE_MOUNT_F_SYMLINKS = 0x1
MOVE_MOUNT_F_EMPTY_PATH = 0x4
MOUNT_ATTR_RDONLY = 0x1
CAPABILITY_XATTR = "security.capability"


def as_int(arg: int) -> int:
    """A syscall's int argument (dirfd, flags) from the 64-bit notification slot."""
    arg &= 0xFFFFFFFF
    return arg - (1 << 32) if arg >= 1 << 31 else arg


def _caller_fd(pid: int, fd: int) -> int:
    """An O_PATH fd for what the caller's fd refers to (EBADF if it has no such fd)."""
    try:
        return os.open(f"/proc/{pid}/fd/{fd}", os.O_PATH | os.O_CLOEXEC)
    except FileNotFoundError:
        raise OSError(errno.EBADF, "bad file descriptor") from None


def _open_at(dirfd: int | None, path: str, follow: bool, empty_ok: bool, directory: bool = False) -> int:
    """In the helper: O_PATH open of (dirfd, path) as the kernel would resolve it for the caller."""
    if not path:
        if empty_ok and dirfd is not None:
            return os.dup(dirfd)
        raise OSError(errno.ENOENT, "empty path")
    flags = os.O_PATH | os.O_CLOEXEC | (0 if follow else os.O_NOFOLLOW) | (os.O_DIRECTORY if directory else 0)
    return os.open(path, flags, dir_fd=dirfd) if dirfd is not None else os.open(path, flags)


def _with_dirfd(pid: int, dfd: int, work) -> int:
    """work(dirfd_or_None, proc_fd) in the caller's namespaces; a path that does not resolve
    declines (the kernel answers the call)."""
    dir_fd = None if dfd == AT_FDCWD else _caller_fd(pid, dfd)
    try:
        return procmount.decline_unresolved(ns.run_in_mount_ns(pid, lambda proc_fd: work(dir_fd, proc_fd)))
    finally:
        if dir_fd is not None:
            os.close(dir_fd)


# -- the new mount API -------------------------------------------------------------------------


def open_tree(pid: int, args: tuple[int, ...], path: str, parents: frozenset[int]) -> int:
    flags = as_int(args[2])
    if not flags & OPEN_TREE_CLONE or flags & AT_RECURSIVE:
        return ns.NOT_OURS

    def work(dir_fd: int | None, proc_fd: int) -> int:
        fd = _open_at(dir_fd, path, not flags & AT_SYMLINK_NOFOLLOW, bool(flags & AT_EMPTY_PATH))
        return errno.EINVAL if ns.mnt_id(fd, proc_fd) in parents else ns.NOT_OURS

    return _with_dirfd(pid, as_int(args[0]), work)


def move_mount(pid: int, args: tuple[int, ...], from_path: str, immutable: frozenset[int]) -> int:
    flags = as_int(args[4])

    def work(dir_fd: int | None, proc_fd: int) -> int:
        fd = _open_at(dir_fd, from_path, bool(flags & MOVE_MOUNT_F_SYMLINKS), bool(flags & MOVE_MOUNT_F_EMPTY_PATH))
        return errno.EINVAL if ns.mnt_id(fd, proc_fd) in immutable else ns.NOT_OURS

    return _with_dirfd(pid, as_int(args[0]), work)


def mount_setattr(pid: int, args: tuple[int, ...], path: str, attr: bytes, readonly: frozenset[int],
                  ro_ancestors: frozenset[int]) -> int:
    if len(attr) < 16:
        return ns.NOT_OURS  # the kernel answers a short struct with EINVAL itself
    _set, clr = struct.unpack_from("=QQ", attr)
    if not clr & MOUNT_ATTR_RDONLY:
        return ns.NOT_OURS
    flags = as_int(args[2])

    def work(dir_fd: int | None, proc_fd: int) -> int:
        fd = _open_at(dir_fd, path, not flags & AT_SYMLINK_NOFOLLOW, bool(flags & AT_EMPTY_PATH))
        mid = ns.mnt_id(fd, proc_fd)
        if mid in readonly or (flags & AT_RECURSIVE and mid in ro_ancestors):
            return errno.EPERM  # read-only stays read-only, as for mount(2) remount
        return ns.NOT_OURS

    return _with_dirfd(pid, as_int(args[0]), work)


def fsopen(fsname: str) -> int:
    """fsopen("proc") would build a procfs without sysbox-fs's nodes or the container's masks:
    ENOSYS makes mount(8) and libmount fall back to mount(2), which is emulated."""
    return errno.ENOSYS if fsname == "proc" else ns.NOT_OURS


# -- setuid files and file capabilities on volumes ---------------------------------------------


def _on_host_bind(fd: int, proc_fd: int) -> bool:
    """Is fd's mount an idmapped mount other than the root filesystem (a host dir bound in)?"""
    mid = ns.mnt_id(fd, proc_fd)
    return any(m.id == mid and m.point != "/" and "idmapped" in m.options.split(",")
               for m in mountinfo.read_at(proc_fd))


def _refuse_on_bind(pid: int, dfd: int, path: str, follow: bool, empty_ok: bool, parent: bool,
                    sgid_only: bool = False) -> int:
    def work(dir_fd: int | None, proc_fd: int) -> int:
        if parent:  # the file is created: its directory decides
            head = os.path.dirname(path.rstrip("/")) or ("/" if path.startswith("/") else "")
            fd = _open_at(dir_fd, head, True, True, directory=True) if head else \
                (os.dup(dir_fd) if dir_fd is not None else os.open(".", os.O_PATH | os.O_CLOEXEC))
        else:
            fd = _open_at(dir_fd, path, follow, empty_ok)
            if sgid_only and stat.S_ISDIR(os.fstat(fd).st_mode):
                return ns.NOT_OURS  # setgid on a directory only passes its group on
        return errno.EPERM if _on_host_bind(fd, proc_fd) else ns.NOT_OURS

    return _with_dirfd(pid, dfd, work)


def set_mode(pid: int, dfd: int, path: str, mode: int, follow: bool = True, empty_ok: bool = False) -> int:
    """chmod family: S_ISUID anywhere on a host bind, S_ISGID on its non-directories."""
    if not mode & (stat.S_ISUID | stat.S_ISGID):
        return ns.NOT_OURS
    return _refuse_on_bind(pid, dfd, path, follow, empty_ok, parent=False, sgid_only=not mode & stat.S_ISUID)


def create_with_mode(pid: int, dfd: int, path: str, mode: int) -> int:
    """creat/open(O_CREAT)/mknod of a file that would be born setuid or setgid."""
    if not mode & (stat.S_ISUID | stat.S_ISGID) or stat.S_ISDIR(mode):
        return ns.NOT_OURS
    return _refuse_on_bind(pid, dfd, path, True, False, parent=True)


def set_xattr(pid: int, dfd: int, path: str, name: str, follow: bool, empty_ok: bool) -> int:
    if name != CAPABILITY_XATTR:
        return ns.NOT_OURS
    return _refuse_on_bind(pid, dfd, path, follow, empty_ok, parent=False)

