"""Wiring sysbox-fs into a container: spec bind mounts, the register request, and the late mounts.

/proc/sys cannot be a spec mount (runc refuses destinations inside /proc but a few files), so
after `runc create` a forked child clones the FUSE subtree, enters the container's mount
namespace and moves it onto /proc/sys there.  sysbox-runc is single-threaded, so the fork is
safe, and setns into a mount namespace resets the child's root to the container's root: the
destination is resolved inside the container, never on the host.
"""

from __future__ import annotations

import os

from sysbox.typing_lite import TYPE_CHECKING

if TYPE_CHECKING:
    from typing import Any

    from sysbox.runc.context import Context
    from sysbox.runc.record import FsRecord

from sysbox.errors import SysboxError
from sysbox.fs.mounts import BIND_OPTIONS, MOUNTS


def connect(ctx: Context) -> FsRecord | None:
    """The running sysbox-fs to use, or None when it is not in use here."""
    if not ctx.fs_socket:
        return None
    if not ctx.host.exists(ctx.fs_socket):
        ctx.log("info", f"sysbox-fs is not running ({ctx.fs_socket} absent): /proc and /sys are not emulated")
        return None
    info = ctx.host.fs(ctx.fs_socket, "ping")
    return {"socket": ctx.fs_socket, "mountpoint": info["mountpoint"], "seccomp_socket": info["seccomp_socket"],
            "instance": info.get("instance", "")}


def spec_mounts(mountpoint: str) -> list[dict[str, Any]]:
    out = []
    for src, dest, how, needs in MOUNTS:
        if how == "late" or (needs and not os.path.exists(needs)):
            continue
        options = BIND_OPTIONS + (["ro"] if how == "file" else [])
        out.append({"destination": dest, "type": "bind", "source": os.path.join(mountpoint, src), "options": options})
    return out


def _plain(path: str) -> bool:
    """A path sysbox-fs's register schema accepts (others are still masked by runc, but not
    guarded against umount by the trap)."""
    return len(path) < 4096 and all(ch.isalnum() or ch in "_./:-" for ch in path)


def register_args(cid: str, pid: int, uid: int, gid: int, size: int, spec: dict[str, Any],
                  fs: FsRecord) -> dict[str, Any]:
    """sysbox-fs's register request for the container of `spec` (the rewritten one)."""
    linux = spec.get("linux", {})
    masked = [p[len("/proc/"):] for p in linux.get("maskedPaths", []) if p.startswith("/proc/")]
    immutable = sorted({os.path.normpath(p) for p in linux.get("maskedPaths", []) + linux.get("readonlyPaths", [])
                        if isinstance(p, str) and p.startswith("/") and _plain(p)})
    extra = {"instance": fs["instance"]} if fs.get("instance") else {}
    return {"id": cid, "pid": pid, "uid": uid, "gid": gid, "size": size, "masked": masked,
            "immutable": immutable[:512], **extra}


def attach_late(mountpoint: str, pid: int) -> None:
    """Move each "late" node onto its destination inside the container of `pid`."""
    from sysbox.linux import nsmount

    for src, dest, how, needs in MOUNTS:
        if how != "late" or (needs and not os.path.exists(needs)):
            continue
        try:
            nsmount.move_into(pid, os.path.join(mountpoint, src), dest)
        except OSError:
            raise SysboxError(f"could not mount sysbox-fs {src} on {dest} in the container") from None
