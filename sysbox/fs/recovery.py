"""Coming back after a crash: a restarted sysbox-fs serves the containers that kept running.

Each registration is also written to <state-dir>/containers/<id>.json (removed at unregister).
A sysbox-fs that starts and finds records re-registers each container whose init still runs
(same pid and start time).  Its FUSE connection is normally still alive, kept by the fd
holder (holder.py): it is served again where it is, with the requests in flight sent again,
and the container notices nothing but a pause.  Without one (no holder, or a connection the
watchdog aborted), a new connection is attached inside the container's mount namespace on
top of the dead mounts; reads fail (ENOTCONN) while no sysbox-fs runs.  What cannot come back: the
seccomp listener fds died with the old process, so trapped mount/umount2 calls of containers
started before the restart get ENOSYS from then on.
"""

from __future__ import annotations

import json
import logging
import os
from typing import Any

from sysbox.fs.mounts import MOUNTS
from sysbox.linux.fusedev import FSTYPE
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


def keep_state(records: Records, c: Any, rec: dict[str, Any]) -> None:
    """From now on, each write to an emulated node is recorded with the container's record,
    so a restarted sysbox-fs shows the container what it wrote (restore_state)."""
    def persist() -> None:
        state = {"sysctl": {k: v.decode("latin-1") for k, v in c.sysctl.items()},
                 "files": {k: v.decode("latin-1") for k, v in c.files.items()}, "boot_id": c.boot_id}
        try:
            records.save(c.id, {**rec, "state": state})
        except (OSError, ValueError) as e:
            log.warning("could not record the state of %s: %s", c.id, e)
    c.persist = persist


def restore_state(c: Any, rec: dict[str, Any]) -> None:
    """What the container wrote to emulated nodes, and its boot id, as the last sysbox-fs
    recorded them (FsService.persist)."""
    state = rec.get("state") or {}
    for key, attr in (("sysctl", c.sysctl), ("files", c.files)):
        for k, v in (state.get(key) or {}).items():
            if isinstance(k, str) and isinstance(v, str):
                attr[k] = v.encode("latin-1")
    if isinstance(state.get("boot_id"), str):
        c.boot_id = state["boot_id"]


def recover(records: Records, registry: Any, conns: Any, token: Any,
            held: dict[str, tuple[int, dict[str, Any]]] | None = None) -> tuple[int, int]:
    """Re-register every recorded container still running, and serve it again: through the
    connection the holder kept (`held`: id -> (fd, meta); nothing to re-attach, the container
    never lost its mounts), or else a new one attached over the dead mounts.  Drop the others.
    Returns (recovered, dropped).  Runs in a worker thread: the registry and the connections
    are changed in the trio thread (`token`); the FUSE server thread serves the lookups
    re-attaching makes."""
    import trio

    held = dict(held or {})

    def add(rec: dict[str, Any]) -> tuple[Any, bool]:
        c = registry.add(rec["id"], rec["pid"], rec["uid"], rec["gid"], rec["size"], rec.get("masked"),
                         rec.get("immutable"))
        restore_state(c, rec)
        keep_state(records, c, rec)
        try:
            kept = held.pop(rec["id"], None)
            conn = conns.resume(rec["id"], kept[0], rec["uid"], rec["gid"], c) if kept else None
            resumed = conn is not None
            if conn is None:
                conn = conns.open(rec["id"], rec["uid"], rec["gid"])
        except BaseException:
            registry.remove(rec["id"])
            raise
        conn.fs.container, c.mountpoint = c, conn.path
        return c, resumed

    recovered = dropped = 0
    for rec in records.load():
        cid, pid = rec.get("id"), rec.get("pid")
        if not isinstance(cid, str) or not isinstance(pid, int) or start_time(pid) != rec.get("start"):
            records.drop(str(cid))
            dropped += 1
            continue
        try:
            c, resumed = trio.from_thread.run_sync(add, rec, trio_token=token)
        except (OSError, ValueError, KeyError) as e:
            log.warning("could not re-register %s after restart: %s", cid, e)
            records.drop(cid)
            dropped += 1
            continue
        if not resumed:
            failed = reattach(c.mountpoint, pid)
            c.forget_mounts()
            if failed:
                log.warning("re-attached %s with failures: %s", cid, "; ".join(failed))
        recovered += 1
        log.info("recovered %s (pid %d) after restart%s", cid, pid, ", its connection resumed" if resumed else "")
    for cid, (fd, _meta) in held.items():  # connections of containers that are gone, or never registered
        trio.from_thread.run_sync(conns.discard, cid, fd, trio_token=token)
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
