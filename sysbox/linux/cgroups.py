"""Cgroup delegation: hand a container's own cgroup subtree to its mapped root.

systemd inside creates init.scope, system.slice, ... under its cgroup; inside a user namespace
it can do so only if its cgroup directories belong to its (mapped) root.  We chown exactly
what delegation needs: the directory (to create children) and the files that move processes
or enable controllers.  Limit files (memory.max, cpu.*) stay host-owned, so the container
cannot raise its own limits.  Works for cgroup v1 (each hierarchy), v2 and hybrid hosts.
"""

from __future__ import annotations

import os

from sysbox.linux import mountinfo

V1_FILES = ("cgroup.procs", "tasks", "cgroup.clone_children", "notify_on_release")
V2_FILES = ("cgroup.procs", "cgroup.threads", "cgroup.subtree_control")


def hierarchy_mounts() -> list[tuple[frozenset[str], str]]:
    """(option set, mount point) per hierarchy root mount: an empty set for cgroup2."""
    out: list[tuple[frozenset[str], str]] = []
    for m in mountinfo.read():
        if m.fstype == "cgroup2":
            out.append((frozenset(), m.point))
        elif m.fstype == "cgroup" and m.root == "/":
            out.append((frozenset(m.super_options.split(",")), m.point))
    return out


def process_cgroups(pid: int) -> list[tuple[frozenset[str], str, str]]:
    """(controllers, cgroup path, host directory) of each hierarchy the process belongs to; an
    empty controller set is the v2 (unified) hierarchy."""
    mounts = hierarchy_mounts()
    out = []
    with open(f"/proc/{pid}/cgroup") as f:
        for line in f:
            _, controllers, path = line.rstrip("\n").split(":", 2)
            want = frozenset(controllers.split(",")) if controllers else frozenset()
            for opts, point in mounts:
                if (not want and not opts) or (want and want <= opts):
                    out.append((want, path, os.path.join(point, path.lstrip("/"))))
                    break
    return out


def process_dirs(pid: int) -> list[tuple[str, bool]]:
    """(directory, is_v2) of each hierarchy the process belongs to, hierarchy roots left out."""
    return [(d, not want) for want, path, d in process_cgroups(pid) if path != "/"]


def delegate(pid: int, uid: int, gid: int) -> list[str]:
    """chown the cgroup dirs of `pid` (and their delegation files) to uid:gid; returns the dirs.

    In the v2 hierarchy of a hybrid host the container may sit in a shared cgroup: that one is
    delegated only if the container's init is its only process.
    """
    done = []
    for path, is_v2 in process_dirs(pid):
        if is_v2 and not _owned_by_container(path, pid):
            continue
        os.chown(path, uid, gid)
        for name in V2_FILES if is_v2 else V1_FILES:
            try:
                os.chown(os.path.join(path, name), uid, gid)
            except FileNotFoundError:
                pass
        done.append(path)
    return done


def _owned_by_container(path: str, pid: int) -> bool:
    """A v2 cgroup is the container's own only if every process in it belongs to the container."""
    try:
        with open(os.path.join(path, "cgroup.procs")) as f:
            procs = [int(x) for x in f.read().split()]
    except OSError:
        return False
    return procs == [pid]
