"""Seccomp user notification: the structs and ioctls no Python library wraps.

Sizes were checked on this kernel with seccomp(SECCOMP_GET_NOTIF_SIZES): notif 80, resp 24.
"""

from __future__ import annotations

import fcntl
import os
import struct
from dataclasses import dataclass

NOTIF_RECV = 0xC0502100
NOTIF_SEND = 0xC0182101
NOTIF_ID_VALID = 0x40082102
FLAG_CONTINUE = 1
_NOTIF = struct.Struct("=QIIiIQ6Q")   # id, pid, flags, nr, arch, ip, args[6]
_RESP = struct.Struct("=QqiI")        # id, val, error, flags


@dataclass(frozen=True)
class Notification:
    id: int
    pid: int
    nr: int
    arch: int
    args: tuple[int, ...]


def recv(fd: int) -> Notification:
    buf = bytearray(_NOTIF.size)
    fcntl.ioctl(fd, NOTIF_RECV, buf, True)
    nid, pid, _flags, nr, arch, _ip, *args = _NOTIF.unpack(buf)
    return Notification(nid, pid, nr, arch, tuple(args))


def id_valid(fd: int, nid: int) -> bool:
    """Is the notification still pending (the pid not recycled by a new process)?"""
    try:
        fcntl.ioctl(fd, NOTIF_ID_VALID, struct.pack("=Q", nid))
        return True
    except OSError:
        return False


def respond(fd: int, nid: int, val: int = 0, error: int = 0) -> None:
    """Answer: error is a negative errno (or 0 with val as the syscall's return value)."""
    fcntl.ioctl(fd, NOTIF_SEND, _RESP.pack(nid, val, error, 0))


def allow(fd: int, nid: int) -> None:
    """Let the kernel run the syscall itself, with the caller's own credentials."""
    fcntl.ioctl(fd, NOTIF_SEND, _RESP.pack(nid, 0, 0, FLAG_CONTINUE))


# The numbers of the syscalls sysbox-fs traps, per architecture (the notification gives only nr).
_NUMBERS = {
    "x86_64": {"mount": 165, "umount2": 166, "open_tree": 428, "move_mount": 429, "mount_setattr": 442,
               "fsopen": 430, "chmod": 90, "fchmod": 91, "fchmodat": 268, "fchmodat2": 452, "creat": 85,
               "open": 2, "openat": 257, "mknod": 133, "mknodat": 259, "setxattr": 188, "lsetxattr": 189,
               "fsetxattr": 190, "sysinfo": 99},
    "aarch64": {"mount": 40, "umount2": 39, "open_tree": 428, "move_mount": 429, "mount_setattr": 442,
                "fsopen": 430, "fchmod": 52, "fchmodat": 53, "fchmodat2": 452, "openat": 56, "mknodat": 33,
                "setxattr": 5, "lsetxattr": 6, "fsetxattr": 7, "sysinfo": 179},
}
TRAPPED_NAMES = {nr: name for name, nr in _NUMBERS.get(os.uname().machine, _NUMBERS["x86_64"]).items()}
