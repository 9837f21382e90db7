"""Cgroup directories that other managers (podman's cgroupfs manager, LXC) create and leave:
snapshot the tree before, remove what appeared (if empty) after, and report what could not go."""

from __future__ import annotations

import os
import time

ROOT = "/sys/fs/cgroup"


def snapshot(max_depth: int = 4) -> set[str]:
    found: set[str] = set()
    base_depth = ROOT.count("/")
    for dirpath, dirnames, _ in os.walk(ROOT):
        if dirpath.count("/") - base_depth >= max_depth:
            dirnames[:] = []
        found.add(dirpath)
    return found


def prune(before: set[str], names: tuple[str, ...], timeout: float = 15) -> list[str]:
    """prune_once until nothing is left or `timeout` passes: the other manager's processes
    (podman's conmon and cleanup process) leave their cgroups a moment after the command returns."""
    deadline = time.monotonic() + timeout
    left = prune_once(before, names)
    while left and time.monotonic() < deadline:
        time.sleep(0.2)
        left = prune_once(before, names)
    return left


def prune_once(before: set[str], names: tuple[str, ...]) -> list[str]:
    """rmdir the directories not in `before` whose path has a component starting with one of
    `names` (the other manager's own prefixes: never another test's containers), deepest
    first; returns those still there."""
    left = []
    new = [d for d in snapshot() - before if any(part.startswith(names) for part in d.split("/"))]
    for d in sorted(new, key=lambda p: p.count("/"), reverse=True):
        try:
            os.rmdir(d)
        except FileNotFoundError:
            pass
        except OSError:
            left.append(d)
    return left
