"""The lower runtime never gets a host device node as the container's stdio.

crun (1.8) chowns the container's stdio to the container's root from the host side, before
entering the user namespace, so `crun create` with stdin on /dev/null re-owns the host's
/dev/null (runc does the same chown inside the user namespace, where the kernel refuses it).
Every stdio fd that is a character device other than a terminal is therefore swapped for a
private node of the same device: made in /dev (a filesystem that allows device nodes), opened
with the same access mode, unlinked at once.  The container reads and writes the same device;
whatever a runtime does to the inode touches no host file.
"""

from __future__ import annotations

import os
import stat

_TERMINALS = {(5, 0), (5, 1), (5, 2)}  # /dev/tty, /dev/console, /dev/ptmx


def _is_terminal(rdev: int) -> bool:
    major = os.major(rdev)
    return 136 <= major <= 143 or major == 4 or (major, os.minor(rdev)) in _TERMINALS


def privatize() -> int:
    """Swap fds 0-2 that are host device nodes for private ones; returns how many were swapped."""
    swapped = 0
    for fd in (0, 1, 2):
        try:
            st = os.fstat(fd)
        except OSError:
            continue
        if not stat.S_ISCHR(st.st_mode) or _is_terminal(st.st_rdev):
            continue
        import fcntl

        path = f"/dev/.sysbox-stdio-{os.getpid()}-{fd}"
        os.mknod(path, stat.S_IFCHR | 0o600, st.st_rdev)
        try:
            new = os.open(path, (fcntl.fcntl(fd, fcntl.F_GETFL) & os.O_ACCMODE) | os.O_NOCTTY)
        finally:
            os.unlink(path)
        os.dup2(new, fd)  # inheritable, as the original was
        os.close(new)
        swapped += 1
    return swapped
