"""The one place where sysbox talks to the kernel through ctypes.

Python 3.11's `os` module lacks the new mount API (open_tree, mount_setattr, move_mount),
unshare and setns; every other module calls them through here so that syscall numbers,
struct layouts and errno handling live in a single file.  Only x86_64 and aarch64 are
supported; both use the generic numbers for the new mount API.
"""

from __future__ import annotations

import ctypes
import os

_libc = ctypes.CDLL(None, use_errno=True)
_libc.syscall.restype = ctypes.c_long

# Syscall numbers (the new mount API shares its numbers across architectures).
SYS_OPEN_TREE = 428
SYS_MOVE_MOUNT = 429
SYS_MOUNT_SETATTR = 442

# open_tree flags
OPEN_TREE_CLONE = 1
OPEN_TREE_CLOEXEC = os.O_CLOEXEC
AT_EMPTY_PATH = 0x1000
AT_RECURSIVE = 0x8000
AT_SYMLINK_NOFOLLOW = 0x100
# move_mount flags
MOVE_MOUNT_F_EMPTY_PATH = 0x00000004
# mount_setattr
MOUNT_ATTR_RDONLY = 0x00000001
MOUNT_ATTR_IDMAP = 0x00100000
# namespaces
CLONE_NEWNS = 0x00020000
CLONE_NEWCGROUP = 0x02000000
CLONE_NEWUSER = 0x10000000
CLONE_NEWNET = 0x40000000
CLONE_NEWIPC = 0x08000000
CLONE_NEWUTS = 0x04000000
CLONE_NEWPID = 0x20000000
# umount2
MNT_FORCE = 1
MNT_DETACH = 2
UMOUNT_NOFOLLOW = 8
# mount(2) flags
MS_RDONLY = 0x1
MS_NOSUID = 0x2
MS_NODEV = 0x4
MS_NOEXEC = 0x8
MS_REMOUNT = 0x20
MS_BIND = 0x1000
MS_MOVE = 0x2000
MS_REC = 0x4000
MS_UNBINDABLE = 0x20000
MS_PRIVATE = 0x40000
MS_SLAVE = 0x80000
MS_SHARED = 0x100000


class _MountAttr(ctypes.Structure):
    _fields_ = [
        ("attr_set", ctypes.c_uint64),
        ("attr_clr", ctypes.c_uint64),
        ("propagation", ctypes.c_uint64),
        ("userns_fd", ctypes.c_uint64),
    ]


def _check(ret: int, what: str, path: str | None = None) -> int:
    if ret < 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}", path)
    return ret


def open_tree(path: str, flags: int, dirfd: int = -100) -> int:
    """Return an O_PATH-like fd for the mount at `path` (a detached clone with OPEN_TREE_CLONE)."""
    ret = _libc.syscall(SYS_OPEN_TREE, ctypes.c_int(dirfd), os.fsencode(path), ctypes.c_uint(flags))
    return _check(ret, "open_tree", path)


def mount_setattr(fd: int, attr_set: int = 0, attr_clr: int = 0, userns_fd: int = 0,
                  path: str = "", flags: int = AT_EMPTY_PATH) -> None:
    attr = _MountAttr(attr_set, attr_clr, 0, userns_fd)
    ret = _libc.syscall(SYS_MOUNT_SETATTR, ctypes.c_int(fd), os.fsencode(path), ctypes.c_uint(flags),
                        ctypes.byref(attr), ctypes.c_size_t(ctypes.sizeof(attr)))
    _check(ret, "mount_setattr", path or None)


def move_mount(from_fd: int, to_path: str, to_dirfd: int = -100, from_path: str = "",
               flags: int = MOVE_MOUNT_F_EMPTY_PATH) -> None:
    ret = _libc.syscall(SYS_MOVE_MOUNT, ctypes.c_int(from_fd), os.fsencode(from_path),
                        ctypes.c_int(to_dirfd), os.fsencode(to_path), ctypes.c_uint(flags))
    _check(ret, "move_mount", to_path)


def unshare(flags: int) -> None:
    _check(_libc.unshare(ctypes.c_int(flags)), "unshare")


def setns(fd: int, nstype: int = 0) -> None:
    _check(_libc.setns(ctypes.c_int(fd), ctypes.c_int(nstype)), "setns")


def umount2(path: str, flags: int = 0) -> None:
    _check(_libc.umount2(os.fsencode(path), ctypes.c_int(flags)), "umount2", path)


def mount(source: str, target: str, fstype: str, flags: int = 0, data: str = "") -> None:
    ret = _libc.mount(os.fsencode(source), os.fsencode(target), os.fsencode(fstype),
                      ctypes.c_ulong(flags), os.fsencode(data) if data else None)
    _check(ret, "mount", target)


PR_SET_CHILD_SUBREAPER = 36


def set_child_subreaper() -> None:
    """Orphaned descendants (a container's init once runc exits) become our children."""
    _check(_libc.prctl(ctypes.c_int(PR_SET_CHILD_SUBREAPER), ctypes.c_ulong(1), 0, 0, 0), "prctl")


PR_SET_PDEATHSIG = 1


def die_with_parent(sig: int = 9) -> None:
    """This process gets `sig` when the thread that forked it exits (a helper of a daemon
    that is killed must not act after a restarted daemon has acted in its place)."""
    _check(_libc.prctl(ctypes.c_int(PR_SET_PDEATHSIG), ctypes.c_ulong(sig), 0, 0, 0), "prctl")




PROC_SUPER_MAGIC = 0x9FA0


def fstatfs_type(fd: int) -> int:
    """f_type of the filesystem holding fd (struct statfs starts with it on x86_64 and aarch64)."""
    buf = ctypes.create_string_buffer(256)
    _check(_libc.fstatfs(ctypes.c_int(fd), buf), "fstatfs")
    return int.from_bytes(buf.raw[:8], "little", signed=False)


def set_ids_in_userns() -> None:
    """After setns into a user namespace: become its root (uid/gid 0 there), so the kernel
    judges what follows as that namespace's root, not as host root with an old kuid."""
    _check(_libc.setgroups(ctypes.c_size_t(0), None), "setgroups")
    os.setresgid(0, 0, 0)
    os.setresuid(0, 0, 0)
