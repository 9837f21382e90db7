"""Idmapped mounts: present a host directory to a user namespace with shifted ownership.

The kernel needs a user-namespace fd that carries the mapping.  We get one from a short-lived
forked child that unshares CLONE_NEWUSER; the parent writes its uid_map/gid_map, opens
/proc/<child>/ns/user, and lets the child exit.  The fd keeps the namespace alive.  One
create idmaps the rootfs and several bind sources with the same mapping, so the last
namespace made is kept (one fd) and reused: a fork and three /proc writes saved per mount.
"""

from __future__ import annotations

import os

from sysbox.linux import syscalls as sc

_last: tuple[tuple[int, int, int], int] | None = None  # (uid, gid, size), fd


def userns_fd(uid_base: int, gid_base: int, size: int = 65536) -> int:
    """An fd of a user namespace mapping 0..size to base..base+size (ours: do not close it)."""
    global _last
    key = (uid_base, gid_base, size)
    if _last is not None and _last[0] == key:
        return _last[1]
    fd = _new_userns_fd(uid_base, gid_base, size)
    if _last is not None:
        os.close(_last[1])
    _last = (key, fd)
    return fd


def _new_userns_fd(uid_base: int, gid_base: int, size: int) -> int:
    ready_r, ready_w = os.pipe()
    go_r, go_w = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: unshare, report, wait until the parent is done with us
        try:
            os.close(ready_r)
            os.close(go_w)
            sc.unshare(sc.CLONE_NEWUSER)
            os.write(ready_w, b"1")
            os.read(go_r, 1)
        finally:
            os._exit(0)
    os.close(ready_w)
    os.close(go_r)
    fd = -1
    try:
        if os.read(ready_r, 1) != b"1":
            raise OSError("could not create a user namespace (unshare CLONE_NEWUSER failed)")
        with open(f"/proc/{pid}/uid_map", "w") as f:
            f.write(f"0 {uid_base} {size}\n")
        with open(f"/proc/{pid}/setgroups", "w") as f:
            f.write("deny")
        with open(f"/proc/{pid}/gid_map", "w") as f:
            f.write(f"0 {gid_base} {size}\n")
        fd = os.open(f"/proc/{pid}/ns/user", os.O_RDONLY | os.O_CLOEXEC)
    finally:
        os.close(go_w)
        os.close(ready_r)
        os.waitpid(pid, 0)
    return fd


def idmapped_clone(path: str, uid_base: int, gid_base: int, size: int = 65536,
                   recursive: bool = False) -> int:
    """Return a detached mount fd of `path` whose ids are shifted by the given bases.

    The caller attaches it with sc.move_mount(fd, target) and closes it.
    """
    flags = sc.OPEN_TREE_CLONE | sc.OPEN_TREE_CLOEXEC
    if recursive:
        flags |= sc.AT_RECURSIVE
    fd = sc.open_tree(path, flags)
    try:
        sc.mount_setattr(fd, attr_set=sc.MOUNT_ATTR_IDMAP, userns_fd=userns_fd(uid_base, gid_base, size),
                         flags=sc.AT_EMPTY_PATH | (sc.AT_RECURSIVE if recursive else 0))
    except BaseException:
        os.close(fd)
        raise
    return fd


def mount_idmapped(source: str, target: str, uid_base: int, gid_base: int,
                   size: int = 65536, recursive: bool = False) -> None:
    fd = idmapped_clone(source, uid_base, gid_base, size, recursive)
    try:
        sc.move_mount(fd, target)
    finally:
        os.close(fd)
