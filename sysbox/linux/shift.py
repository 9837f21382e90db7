"""Shifting file ownership by chown, for filesystems that cannot be idmapped.

shift_tree moves ids 0..size-1 up to base..base+size-1; unshift_tree moves them back.  Both are
idempotent (ids outside the source window are left alone, and bases are far above 65536), so
an interrupted shift is completed by running it again.  The walk uses directory fds, never
follows symlinks, never crosses into another mount, never re-owns a device node, and never
recurses (sysbox.linux.tree).  chown clears setuid/setgid bits, so such modes are restored
afterwards.
"""

from __future__ import annotations

import os
import stat

from sysbox.linux import tree
from sysbox.typing_lite import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Callable
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


def walk(path: str, ids: Mapper) -> int:
    """Apply `ids` to the owner of path and everything below it; returns entries visited.
    Only entries on path's own filesystem are touched: a mount inside the tree (a host
    device node bound over a file, another filesystem on a directory) is not ours to chown."""
    fd = os.open(path, _DIR)
    count = 1
    try:
        st = os.fstat(fd)
        dev = st.st_dev
        _chown(None, fd, st, ids)

        def visit(dir_fd: int, name: str, est: os.stat_result) -> bool:
            nonlocal count
            if est.st_dev != dev or stat.S_ISCHR(est.st_mode) or stat.S_ISBLK(est.st_mode):
                return False  # device nodes are never re-owned (runc gives /dev its own nodes)
            _chown(name, dir_fd, est, ids)
            count += 1
            return True

        tree.walk_fd(fd, visit)
        return count
    finally:
        os.close(fd)


def shift_tree(path: str, uid: int, gid: int, size: int) -> int:
    return walk(path, lambda u, g: (u + uid if u < size else u, g + gid if g < size else g))


def unshift_tree(path: str, uid: int, gid: int, size: int) -> int:
    return walk(path, lambda u, g: (u - uid if uid <= u < uid + size else u,
                                    g - gid if gid <= g < gid + size else g))
