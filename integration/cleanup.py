"""Removing a test's (or benchmark's) scratch tree safely.

`rm -rf --one-file-system` is not enough: an idmapped mount of an image's rootfs is the same
filesystem as the image cache, so rm would walk into it and delete the cached image.  Every
mount under the tree is detached first (deepest first); the caller learns which there were.
"""

from __future__ import annotations

import os
import subprocess


def mounts_under(path: str) -> list[str]:
    path = os.path.abspath(path)
    with open("/proc/self/mountinfo") as f:
        points = [line.split()[4] for line in f]
    return sorted({p for p in points if p == path or p.startswith(path + "/")}, reverse=True)


def remove_tree(*paths: str) -> list[str]:
    """Detach what is mounted under each path, then delete it; returns the mounts found."""
    found: list[str] = []
    for path in paths:
        for point in mounts_under(path):
            found.append(point)
            subprocess.run(["umount", "-l", point], capture_output=True)
        if mounts_under(path):
            continue  # never rm through a mount that would not go
        subprocess.run(["rm", "-rf", "--one-file-system", path], capture_output=True)
    return found
