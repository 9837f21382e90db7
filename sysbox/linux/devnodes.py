"""Device nodes for `linux.devices`, made by host root where a container cannot make them.

Inside a user namespace mknod(2) of a device fails, and runc falls back to binding the host's
node of the same path, which the container's root cannot open (the host owns it) or which does
not exist.  We make the node on a tmpfs of our own (mounted without nodev, so its nodes open),
owned by the container's ids; runc binds it in.  Opening it still passes the device cgroup rules
the spec sets, as with runc.
"""

from __future__ import annotations

import os
import stat

from sysbox.linux import syscalls as sc

KINDS = {"c": stat.S_IFCHR, "u": stat.S_IFCHR, "b": stat.S_IFBLK, "p": stat.S_IFIFO}


def mount_store(path: str) -> None:
    """A small tmpfs at `path` (0700: reachable by host root only, the binds name the nodes)."""
    os.makedirs(path, mode=0o700, exist_ok=True)
    sc.mount("tmpfs", path, "tmpfs", sc.MS_NOSUID | sc.MS_NOEXEC, "mode=0700,size=64k,nr_inodes=4096")


def make_node(path: str, kind: str, major: int, minor: int, mode: int, uid: int, gid: int) -> None:
    """The node at `path`, with exactly `mode` (no umask) and owned by uid:gid on the host."""
    dev = os.makedev(major, minor) if kind != "p" else 0
    os.mknod(path, KINDS[kind] | (mode & 0o7777), dev)
    os.chown(path, uid, gid)
    os.chmod(path, mode & 0o7777)
