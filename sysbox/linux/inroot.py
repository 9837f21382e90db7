"""Writing files into a tree that an image controls, resolving its paths inside that tree.

A VM's rootfs comes from a user-supplied image: /etc or /root may be symlinks, absolute or
full of '..'.  Host root following them from the host would write wherever they point, so
each write runs in a forked child that chroot()s into the tree first; the kernel then resolves
every symlink and '..' inside it.  The child runs no code from the image and holds no fd
outside it (the fork keeps only what Python opened with O_CLOEXEC off, which is nothing here).
"""

from __future__ import annotations

import os
from collections.abc import Callable

from sysbox.linux import ns


def run_in(root: str, work: Callable[[], int], timeout: float | None = None) -> int:
    """work() in a forked child chroot()ed into `root` (so every path it opens resolves inside
    the tree); returns its exit code: 0 or an errno."""
    def child() -> int:
        os.chroot(root)
        os.chdir("/")
        return work()

    return ns.fork_and_wait(child, timeout=timeout)


def write_file(root: str, path: str, data: bytes, mode: int = 0o644, dir_mode: int = 0o755) -> int:
    """Create or replace `path` (absolute, as the tree sees it) with `data`, owned by the tree's
    uid 0; missing parent directories are made with dir_mode.  Returns 0 or the errno."""
    if not path.startswith("/"):
        raise ValueError(f"{path}: not absolute")

    def work() -> int:
        made = []
        p = os.path.dirname(path)
        while p != "/" and not os.path.isdir(p):
            made.append(p)
            p = os.path.dirname(p)
        for d in reversed(made):
            os.mkdir(d, dir_mode)
            os.chown(d, 0, 0, follow_symlinks=False)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC, mode)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
            os.fchown(fd, 0, 0)
            os.fchmod(fd, mode)
        finally:
            os.close(fd)
        return 0

    return run_in(root, work, timeout=30)


def remove_files(root: str, paths: list[str]) -> int:
    """Unlink each of `paths` (absolute, as the tree sees them) that exists; 0 or an errno."""
    def work() -> int:
        for p in paths:
            try:
                os.unlink(p)
            except FileNotFoundError:
                pass
        return 0

    return run_in(root, work, timeout=30)
