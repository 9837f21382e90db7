"""Shifting file ownership by chown, for filesystems that cannot be idmapped.

shift_tree moves ids 0..size-1 up to base..base+size-1; unshift_tree moves them back.  Both are
idempotent (ids outside the source window are left alone, and bases are far above 65536), so
an interrupted shift is completed by running it again.  The walk uses directory fds, never
follows symlinks and never crosses into another mount.  chown clears setuid/setgid bits, so
such modes are restored afterwards.
"""

from __future__ import annotations

import os
import stat
from sysbox.typing_lite import TYPE_CHECKING

if TYPE_CHECKING:
    from typing import Callable
    Mapper = Callable[[int, int], tuple[int, int]]

_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


def _chown(name: str | None, dir_fd: int, st: os.stat_result, ids: Mapper) -> None:
    uid, gid = ids(st.st_uid, st.st_gid)
    if (uid, gid) == (st.st_uid, st.st_gid):
        return
    if name is None:  # the top directory itself, by fd
        os.chown(dir_fd, uid, gid)
    else:
        os.chown(name, uid, gid, dir_fd=dir_fd, follow_symlinks=False)
    if not stat.S_ISLNK(st.st_mode) and st.st_mode & (stat.S_ISUID | stat.S_ISGID):
        if name is None:
            os.chmod(dir_fd, stat.S_IMODE(st.st_mode))
        else:
            os.chmod(name, stat.S_IMODE(st.st_mode), dir_fd=dir_fd)


def _walk(dir_fd: int, dev: int, ids: Mapper) -> int:
    with os.scandir(dir_fd) as it:
        entries = list(it)
    count = 0
    for e in entries:
        st = e.stat(follow_symlinks=False)
        _chown(e.name, dir_fd, st, ids)
        count += 1
        if stat.S_ISDIR(st.st_mode) and st.st_dev == dev:
            sub = os.open(e.name, _DIR, dir_fd=dir_fd)
            try:
                count += _walk(sub, dev, ids)
            finally:
                os.close(sub)
    return count


def walk(path: str, ids: Mapper) -> int:
    """Apply `ids` to the owner of path and everything below it; returns entries visited."""
    fd = os.open(path, _DIR)
    try:
        st = os.fstat(fd)
        _chown(None, fd, st, ids)
        return 1 + _walk(fd, st.st_dev, ids)
    finally:
        os.close(fd)


def shift_tree(path: str, uid: int, gid: int, size: int) -> int:
    return walk(path, lambda u, g: (u + uid if u < size else u, g + gid if g < size else g))


def unshift_tree(path: str, uid: int, gid: int, size: int) -> int:
    return walk(path, lambda u, g: (u - uid if uid <= u < uid + size else u,
                                    g - gid if gid <= g < gid + size else g))
