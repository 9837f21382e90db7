"""Presenting bind-mount sources to the container through idmapped mounts.

A host directory bound into a container (docker -v, Docker's own /etc/hosts and resolv.conf,
shm) is owned by host ids the container does not map: inside it would show as nobody and
root there could not write it.  Like the rootfs, each such source is cloned with the
container's id mapping attached and the spec points at the clone, so host uid 0 is root
inside, and what the container writes lands as 0 on the host.

Not idmapped (the spec's bind is kept as is): sources already owned inside the container's
range (special dirs from sysbox-mgr), devices and kernel filesystems (/dev, /proc, /sys),
sysbox-fs nodes, and filesystems that refuse idmapping (logged).
"""

from __future__ import annotations

import os

from sysbox.typing_lite import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

from sysbox.linux import idmap, mountinfo
from sysbox.runc.transform.mounts import is_bind

_SKIP_PREFIXES = ("/dev/", "/proc/", "/sys/")
_SKIP_FSTYPES = ("fuse", "proc", "sysfs", "devtmpfs", "devpts", "mqueue", "cgroup", "cgroup2", "overlay")


def wanted(m: dict[str, Any], uid: int, size: int, skip: tuple[str, ...]) -> bool:
    src = m.get("source", "")
    if not is_bind(m) or not src.startswith("/") or src.startswith(_SKIP_PREFIXES) or src.startswith(skip):
        return False
    try:
        st = os.stat(src)
    except OSError:
        return False  # runc will report the missing source
    if uid <= st.st_uid < uid + size:
        return False  # already owned inside the range: idmapping would shift it twice
    return not mountinfo.fstype_of(os.path.realpath(src)).startswith(_SKIP_FSTYPES)


_LOCKED = ((os.ST_NOSUID, "nosuid", "suid"), (os.ST_NODEV, "nodev", "dev"), (os.ST_NOEXEC, "noexec", "exec"),
           (os.ST_RDONLY, "ro", "rw"))
_ATIME = frozenset({"atime", "noatime", "diratime", "nodiratime", "relatime", "norelatime", "strictatime",
                    "nostrictatime"})


def _source_atime(flags: int) -> list[str]:
    out = ["noatime"] if flags & os.ST_NOATIME else ["relatime"] if flags & os.ST_RELATIME else ["strictatime"]
    return out + (["nodiratime"] if flags & os.ST_NODIRATIME else [])


def keep_locked_flags(m: dict[str, Any]) -> None:
    """Carry the source mount's locked flags into the bind's options.  From inside a user
    namespace, nosuid/nodev/noexec/ro and the atime flags of a mount that came from the host are
    locked: runc's remount of the bind (Kubernetes' shm, `-v src:dst:ro`, an atime option) would
    change them and fail with EPERM (runc 1.1 does not keep them itself).  An atime option the
    spec asks for is replaced by the source's: under a user namespace it cannot be had."""
    try:
        flags = os.statvfs(m["source"]).f_flag
    except (OSError, KeyError):
        return
    opts = list(m.get("options") or [])
    for bit, locked, opposite in _LOCKED:
        if flags & bit:
            opts = [o for o in opts if o != opposite]
            if locked not in opts:
                opts.append(locked)
    if _ATIME & set(opts):
        opts = [o for o in opts if o not in _ATIME] + _source_atime(flags)
    m["options"] = opts


def apply(spec: dict[str, Any], workdir: str, uid: int, gid: int, size: int, skip: tuple[str, ...],
          log: Callable[[str], None], record: Callable[[str], None]) -> None:
    """Replace eligible bind sources with idmapped clones under workdir, passing each mount
    point to `record` before it is made (the caller's record), so a failure or a kill
    part-way can be undone: teardown() takes points that were never mounted too."""
    os.makedirs(workdir, mode=0o711, exist_ok=True)
    for i, m in enumerate(spec.get("mounts", [])):
        if is_bind(m) and m.get("source", "").startswith("/") and not m["source"].startswith(skip):
            keep_locked_flags(m)
        if not wanted(m, uid, size, skip):
            continue
        src = os.path.realpath(m["source"])
        point = os.path.join(workdir, str(i))
        record(point)
        if os.path.isdir(src):
            os.makedirs(point, exist_ok=True)
        else:
            open(point, "a").close()
        try:
            idmap.mount_idmapped(src, point, uid, gid, size, recursive="rbind" in (m.get("options") or []))
        except OSError as e:
            log(f"bind source {src} cannot be idmapped ({e.strerror}); it is bound as is "
                "(host-owned files show as nobody inside)")
            _remove_point(point)
            continue
        m["source"] = point


def _remove_point(point: str) -> None:
    try:
        if os.path.isdir(point):
            os.rmdir(point)
        else:
            os.unlink(point)
    except OSError:
        pass


def teardown(points: list[str]) -> None:
    from sysbox.linux.tree import detach_all

    for point in points:
        detach_all(point)
        _remove_point(point)
