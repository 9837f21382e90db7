"""Deleting directory trees that a container controlled: no symlink followed, no mount crossed."""

from __future__ import annotations

import os
import shutil

from sysbox.errors import SysboxError
from sysbox.linux import mountinfo
from sysbox.linux import syscalls as sc


def detach_all(path: str) -> int:
    """Lazily unmount every mount stacked at `path`; returns how many there were."""
    n = 0
    while mountinfo.at(path) is not None:
        sc.umount2(path, sc.MNT_DETACH)
        n += 1
    return n


class BusyError(SysboxError):
    """Something is still mounted inside the tree."""


def mounts_under(path: str) -> list[str]:
    prefix = path.rstrip("/") + "/"
    with open("/proc/self/mountinfo") as f:
        points = [line.split()[4] for line in f]
    return [p for p in points if p == path or p.startswith(prefix)]


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
    shutil.rmtree(path)  # fd-based on Linux: symlinks inside are unlinked, never followed
