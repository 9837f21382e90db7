"""Wiring sysbox-fs into a container: spec bind mounts, registration, and the late mounts.

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

from sysbox.errors import SysboxError
from sysbox.fs.mounts import BIND_OPTIONS, MOUNTS
from sysbox.runc.cli import Invocation
from sysbox.runc.log import log


def socket_path(inv: Invocation) -> str:
    from sysbox.fs.protocol import DEFAULT_SOCKET
    from sysbox.runc import settings

    return settings.get(inv.globals, "fs-socket") or DEFAULT_SOCKET


def connect(inv: Invocation) -> dict[str, str] | None:
    """{socket, mountpoint} of a running sysbox-fs, or None when it is not in use here."""
    if inv.globals.get("no-sysbox-fs"):
        return None
    path = socket_path(inv)
    if not os.path.exists(path):
        log(inv.globals, "info", f"sysbox-fs is not running ({path} absent): /proc and /sys are not emulated")
        return None
    from sysbox.fs.client import Client

    with Client(path) as c:
        info = c.call("ping")
    return {"socket": path, "mountpoint": info["mountpoint"], "seccomp_socket": info["seccomp_socket"],
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


def register(fs: dict[str, str], cid: str, pid: int, uid: int, gid: int, size: int, spec: dict[str, Any]) -> None:
    from sysbox.fs.client import Client

    linux = spec.get("linux", {})
    masked = [p[len("/proc/"):] for p in linux.get("maskedPaths", []) if p.startswith("/proc/")]
    immutable = sorted({os.path.normpath(p) for p in linux.get("maskedPaths", []) + linux.get("readonlyPaths", [])
                        if isinstance(p, str) and p.startswith("/") and _plain(p)})
    with Client(fs["socket"]) as c:
        extra = {"instance": fs["instance"]} if fs.get("instance") else {}
        c.call("register", id=cid, pid=pid, uid=uid, gid=gid, size=size, masked=masked,
               immutable=immutable[:512], **extra)


def unregister(globals_: dict[str, Any], fs: dict[str, str], cid: str) -> None:
    from sysbox.fs.client import Client, IPCError

    try:  # short: a frozen sysbox-fs must not hold up delete (its own sweep drops the entry later)
        with Client(fs["socket"], timeout=3) as c:
            c.call("unregister", id=cid)
    except IPCError as e:
        log(globals_, "warning", f"could not unregister {cid} from sysbox-fs: {e}")


def attach_late(mountpoint: str, pid: int) -> None:
    """Move each "late" node onto its destination inside the container of `pid`."""
    from sysbox.linux import nsmount

    for src, dest, how, _ in MOUNTS:
        if how != "late":
            continue
        try:
            nsmount.move_into(pid, os.path.join(mountpoint, src), dest)
        except OSError:
            raise SysboxError(f"could not mount sysbox-fs {src} on {dest} in the container") from None
