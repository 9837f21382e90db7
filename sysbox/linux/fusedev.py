"""FUSE connections: /dev/fuse opened and mounted by hand, so one process can serve many.

A connection lives as long as some process holds its /dev/fuse fd; unmounting it (or the fd's
last close) ends it.  The fd is non-blocking: the server waits for it to become readable.
"""

from __future__ import annotations

import errno
import os
import struct

from sysbox.linux import syscalls as sc

FSTYPE = "fuse.sysboxfs"


def mount(target: str, uid: int, gid: int) -> int:
    """A new connection mounted at `target`; returns its fd.  The kernel checks permissions
    itself (default_permissions) against the modes and owners the server reports;
    allow_other lets processes of every user namespace in."""
    fd = os.open("/dev/fuse", os.O_RDWR | os.O_CLOEXEC | os.O_NONBLOCK)
    try:
        sc.mount("sysboxfs", target, FSTYPE, sc.MS_NOSUID | sc.MS_NODEV | sc.MS_NOEXEC,
                 f"fd={fd},rootmode=40000,user_id={uid},group_id={gid},allow_other,default_permissions")
    except BaseException:
        os.close(fd)
        raise
    return fd


def abort(target: str) -> None:
    """Fail every pending and future request of the connection at `target` (ENOTCONN): what
    a forced umount does to FUSE, even when the mount itself stays (EBUSY)."""
    try:
        sc.umount2(target, sc.MNT_FORCE)
    except OSError:
        pass


def read(fd: int, size: int) -> bytes | None:
    """One request, or None when there is none yet.  OSError(ENODEV) once unmounted."""
    try:
        return os.read(fd, size)
    except BlockingIOError:
        return None
    except InterruptedError:
        return None


def write(fd: int, data: bytes) -> None:
    """One reply.  ENOENT (the request was interrupted) is the kernel's to discard."""
    try:
        os.write(fd, data)
    except OSError as e:
        if e.errno not in (errno.ENOENT, errno.ENODEV):
            raise


NOTIFY_RESEND = 7  # Linux >= 6.9: the requests the server read but did not answer are queued again


def resend(fd: int) -> bool:
    """Ask the kernel to send again every request of this connection still waiting for an
    answer; False if the connection is dead (aborted).  A kernel without FUSE_NOTIFY_RESEND
    (EINVAL) loses those requests' answers: their callers wait."""
    try:
        os.write(fd, struct.pack("<IiQ", 16, NOTIFY_RESEND, 0))
    except OSError as e:
        return e.errno != errno.ENODEV and e.errno != errno.ECONNABORTED
    return True
