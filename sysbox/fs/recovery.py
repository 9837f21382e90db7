"""Coming back after a crash: a restarted sysbox-fs serves the containers that kept running.

Each registration is also written to <state-dir>/containers/<id>.json (removed at unregister).
A sysbox-fs that starts and finds records re-registers each container whose init still runs
(same pid and start time), gives it a new connection, then attaches that connection's nodes
inside the container's mount namespace on top of the dead ones the killed daemon left: reads
fail while no sysbox-fs runs (ENOTCONN), and work again once the new one has started.  What cannot come back: the
seccomp listener fds died with the old process, so trapped mount/umount2 calls of containers
started before the restart get ENOSYS from then on.
"""

from __future__ import annotations

import json
import logging
import os
from typing import Any

from sysbox.fs.mounts import MOUNTS
from sysbox.linux.proc import start_time

log = logging.getLogger("sysbox-fs")


class Records:
    def __init__(self, state_dir: str) -> None:
        self.dir = os.path.join(state_dir, "containers")

    def _path(self, cid: str) -> str:
        if "/" in cid or cid in ("", ".", ".."):
            raise ValueError(f"container id {cid!r}")
        return os.path.join(self.dir, cid + ".json")

    def save(self, cid: str, record: dict[str, Any]) -> None:
        os.makedirs(self.dir, mode=0o700, exist_ok=True)
        tmp = self._path(cid) + ".tmp"
        with open(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600), "w") as f:
            json.dump(record, f)
        os.replace(tmp, self._path(cid))

    def drop(self, cid: str) -> None:
        try:
            os.unlink(self._path(cid))
        except (FileNotFoundError, ValueError):
            pass

    def load(self) -> list[dict[str, Any]]:
        out = []
        try:
            names = sorted(os.listdir(self.dir))
        except FileNotFoundError:
            return []
        for name in names:
            if not name.endswith(".json"):
                continue
            try:
                with open(os.path.join(self.dir, name)) as f:
                    out.append(json.load(f))
            except (OSError, ValueError):
                os.unlink(os.path.join(self.dir, name))
        return out


FSTYPE = "fuse.sysboxfs"


def reattach(mountpoint: str, pid: int) -> list[str]:
    """Replace the container's dead sysbox-fs nodes with this sysbox-fs's; returns what failed.
    The dead mounts are detached first: a path through a dead FUSE dentry whose cache expired
    no longer resolves (ENOENT), and restarts would otherwise stack mounts."""
    from sysbox.linux import nsmount

    failed = []
    for src, dest, _how, needs in MOUNTS:
        if needs and not os.path.exists(needs):
            continue  # not mounted at create either
        try:
            nsmount.move_into(pid, os.path.join(mountpoint, src), dest, replace=FSTYPE)
        except OSError as e:
            failed.append(f"{dest}: {e.strerror}")
    return failed


def recover(records: Records, registry: Any, conns: Any, token: Any) -> tuple[int, int]:
    """Re-register and re-attach every recorded container still running; drop the others.
    Returns (recovered, dropped).  Runs in a worker thread: the registry and the connections
    are changed in the trio thread (`token`); the FUSE server thread serves the lookups
    re-attaching makes."""
    import trio

    def add(rec: dict[str, Any]) -> Any:
        c = registry.add(rec["id"], rec["pid"], rec["uid"], rec["gid"], rec["size"], rec.get("masked"),
                         rec.get("immutable"))
        try:
            conn = conns.open(rec["id"], rec["uid"], rec["gid"])
        except BaseException:
            registry.remove(rec["id"])
            raise
        conn.fs.container, c.mountpoint = c, conn.path
        return c

    recovered = dropped = 0
    for rec in records.load():
        cid, pid = rec.get("id"), rec.get("pid")
        if not isinstance(cid, str) or not isinstance(pid, int) or start_time(pid) != rec.get("start"):
            records.drop(str(cid))
            dropped += 1
            continue
        try:
            c = trio.from_thread.run_sync(add, rec, trio_token=token)
        except (OSError, ValueError, KeyError) as e:
            log.warning("could not re-register %s after restart: %s", cid, e)
            records.drop(cid)
            dropped += 1
            continue
        failed = reattach(c.mountpoint, pid)
        c.forget_mounts()
        if failed:
            log.warning("re-attached %s with failures: %s", cid, "; ".join(failed))
        recovered += 1
        log.info("recovered %s (pid %d) after restart", cid, pid)
    _sweep_sysfs(registry)
    return recovered, dropped


def _sweep_sysfs(registry: Any) -> None:
    """Unmount the per-container sysfs mounts a killed sysbox-fs left for containers that are
    gone (deleted while no sysbox-fs ran to hear of it)."""
    from sysbox.linux.tree import detach_all

    base = os.path.join(registry.state_dir or "", "sysfs")
    try:
        names = os.listdir(base)
    except FileNotFoundError:
        return
    for name in names:
        if name in registry.by_id:
            continue
        path = os.path.join(base, name)
        try:
            detach_all(path)
            os.rmdir(path)
        except OSError as e:
            log.warning("could not remove stale %s: %s", path, e)
