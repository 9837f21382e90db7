"""Walking and deleting directory trees that a container controlled.

No symlink is followed, no mount is crossed, and nothing recurses: a container can build a
chain of directories as deep as it likes (mkdir a; cd a; ... a million times), so every walk
keeps one directory fd and an explicit stack of names, and climbs back with ".." checked
against the device and inode it came from (a tree renamed under it stops the walk with an
error instead of walking elsewhere).  Depth costs memory for the names, never stack or fds.
"""

from __future__ import annotations

import errno
import os
import stat

from sysbox.errors import SysboxError
from sysbox.linux import mountinfo
from sysbox.linux import syscalls as sc
from sysbox.typing_lite import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Callable

    # visit(dir_fd, name, lstat) -> True to descend into that directory;
    # leave(dir_fd, name) after the walk is done with a directory it descended into.
    Visit = Callable[[int, str, os.stat_result], bool]
    Leave = Callable[[int, str], None]

_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


def detach_all(path: str) -> int:
    """Lazily unmount every mount stacked at `path`; returns how many there were."""
    n = 0
    while mountinfo.at(path) is not None:
        sc.umount2(path, sc.MNT_DETACH)
        n += 1
    return n


class BusyError(SysboxError):
    """Something is still mounted inside the tree."""


class MovedError(OSError):
    """A directory was renamed while the walk was inside it."""


def mounts_under(path: str) -> list[str]:
    """Mount points at or below `path` (escapes undone: a point with a space in it counts)."""
    prefix = path.rstrip("/") + "/"
    return [m.point for m in mountinfo.read() if m.point == path or m.point.startswith(prefix)]


def walk_fd(top: int, visit: Visit, leave: Leave | None = None) -> None:
    """Depth-first over everything below the directory fd `top` (which stays open and is not
    visited itself), iteratively.  Only directories on top's device are descended into."""
    dev = os.fstat(top).st_dev
    fd = os.dup(top)
    # one frame per directory we are inside: (names left to visit, (dev, ino) of the dir, its name)
    stack: list[tuple[list[str], tuple[int, int], str]] = []
    try:
        names = sorted(os.listdir(fd), reverse=True)
        here = os.fstat(fd)
        stack.append((names, (here.st_dev, here.st_ino), ""))
        while stack:
            names = stack[-1][0]
            if not names:
                finished = stack.pop()[2]
                if not stack:
                    break
                up = os.open("..", _DIR, dir_fd=fd)
                st = os.fstat(up)
                os.close(fd)
                fd = up
                if (st.st_dev, st.st_ino) != stack[-1][1]:
                    raise MovedError(errno.ESTALE, "directory moved during the walk")
                if leave is not None:
                    leave(fd, finished)
                continue
            name = names.pop()
            try:
                st = os.lstat(name, dir_fd=fd)
            except FileNotFoundError:
                continue
            if not visit(fd, name, st) or not stat.S_ISDIR(st.st_mode) or st.st_dev != dev:
                continue
            try:
                sub = os.open(name, _DIR, dir_fd=fd)
            except (FileNotFoundError, NotADirectoryError):
                continue
            sst = os.fstat(sub)
            if (sst.st_dev, sst.st_ino) != (st.st_dev, st.st_ino):
                os.close(sub)
                raise MovedError(errno.ESTALE, f"{name} changed during the walk")
            os.close(fd)
            fd = sub
            stack.append((sorted(os.listdir(fd), reverse=True), (sst.st_dev, sst.st_ino), name))
    finally:
        os.close(fd)


def _empty(fd: int) -> None:
    """Delete everything inside the directory fd."""
    def visit(dir_fd: int, name: str, st: os.stat_result) -> bool:
        if stat.S_ISDIR(st.st_mode):
            return True  # emptied on the way down, removed by leave()
        os.unlink(name, dir_fd=dir_fd)
        return False

    def leave(dir_fd: int, name: str) -> None:
        os.rmdir(name, dir_fd=dir_fd)

    walk_fd(fd, visit, leave)


def remove_path(path: str) -> None:
    """Delete path (file, symlink or tree); refuse if anything is mounted inside it."""
    if not os.path.lexists(path):
        return
    if os.path.islink(path) or not os.path.isdir(path):
        os.unlink(path)
        return
    busy = mounts_under(path)
    if busy:
        raise BusyError(f"{path}: still has mounts ({', '.join(busy[:3])}); not removing it")
    fd = os.open(path, _DIR)
    try:
        _empty(fd)
    finally:
        os.close(fd)
    os.rmdir(path)
