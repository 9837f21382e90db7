"""sysbox-mgr's server: the protocol (sysbox.mgr.protocol) served over trio.

Requests from all connections are handled on one trio thread, so the allocation
transaction never interleaves with another; the only slow work, copying an image's content
into a new special dir, runs in a worker thread under a per-container lock.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from typing import Any

import trio

from sysbox import __version__, ipcserver
from sysbox.ipcserver import Peer, RequestError
from sysbox.mgr import allocator, reconcile, specialdirs
from sysbox.mgr.protocol import REQUESTS, SPECIAL_DIRS
from sysbox.mgr.store import Container, Store

log = logging.getLogger("sysbox-mgr")


@dataclass
class Config:
    socket: str
    data_root: str
    db: str
    pool: allocator.Pool
    gc_interval: float = 30.0


class Manager(ipcserver.Service):
    REQUESTS = REQUESTS
    log = log

    def __init__(self, cfg: Config) -> None:
        super().__init__()
        self.cfg = cfg
        self.store = Store(cfg.db)
        self.locks: dict[str, trio.Lock] = {}

    # -- bookkeeping -------------------------------------------------------------------------

    def _lock(self, cid: str) -> trio.Lock:
        return self.locks.setdefault(cid, trio.Lock())

    def _dirs(self, c: Container) -> list[dict[str, str]]:
        return [{"kind": k, "source": specialdirs.host_path(self.cfg.data_root, k, c.id),
                 "destination": SPECIAL_DIRS[k]} for k in c.special_dirs]

    def release(self, c: Container, why: str) -> None:
        """Remove a container's special dirs, then its record (so a crash in between is redone)."""
        for kind in c.special_dirs:
            specialdirs.remove(self.cfg.data_root, kind, c.id)
        self.store.delete(c.id)
        self.locks.pop(c.id, None)
        log.info("released %s (uid %d gid %d size %d, %d special dirs): %s",
                 c.id, c.uid, c.gid, c.size, len(c.special_dirs), why)

    def reconcile(self) -> list[str]:
        """Release every container that vanished; sweep dirs no record owns.  Returns ids released."""
        released = []
        for c in self.store.all():
            if self._lock(c.id).locked():
                continue  # a request for it is in progress
            if reconcile.liveness(c) is None:
                try:
                    self.release(c, "container vanished (no init pid, no runtime state)")
                    released.append(c.id)
                except Exception as e:  # noqa: BLE001 - one container's tree never stops the manager
                    log.warning("could not release %s yet: %s: %s", c.id, type(e).__name__, e)
        owned = {(k, c.id) for c in self.store.all() for k in c.special_dirs}
        for kind, name in specialdirs.on_disk(self.cfg.data_root):
            building = name[1:-4] if name.startswith(".") and name.endswith(".new") else None
            if (kind, name) not in owned and not (building and building in self.locks):
                path = os.path.join(self.cfg.data_root, kind, name)
                try:
                    specialdirs.remove_path(path)
                    log.info("removed orphan special dir %s", path)
                except Exception as e:  # noqa: BLE001 - as above
                    log.warning("could not remove orphan %s: %s: %s", path, type(e).__name__, e)
        return released

    # -- operations --------------------------------------------------------------------------

    async def op_ping(self, req: dict[str, Any], peer: Peer) -> dict[str, Any]:
        return {"version": __version__, "pid": os.getpid()}

    async def op_status(self, req: dict[str, Any], peer: Peer) -> dict[str, Any]:
        containers = self.store.all()
        pool = self.cfg.pool
        return {
            "pool": {"subuid_file": pool.subuid_file, "uid_start": pool.uid_start, "gid_start": pool.gid_start,
                     "slots": pool.slots, "used": sum(1 for c in containers if c.slot is not None)},
            "containers": [{**c.public(), "live": reconcile.liveness(c), "special_dirs": self._dirs(c)}
                           for c in containers],
        }

    async def op_register(self, req: dict[str, Any], peer: Peer) -> dict[str, Any]:
        cid, rootfs = req["id"], req["rootfs"]
        kinds = sorted(req.get("special_dirs", []))
        async with self._lock(cid):
            c = self.store.get(cid)
            restarted = c is not None
            if c is None:
                try:
                    c = self.store.allocate(self.cfg.pool, cid, rootfs, req.get("runtime_root"), kinds,
                                            peer, req.get("mappings"), keep=bool(req.get("keep")))
                except allocator.Exhausted as e:
                    raise RequestError(str(e), "exhausted") from None
                except allocator.Conflict as e:
                    raise RequestError(str(e), "conflict") from None
                except allocator.OutsidePool as e:
                    raise RequestError(str(e), "outside-pool") from None
                log.info("registered %s: uid %d gid %d size %d", cid, c.uid, c.gid, c.size)
            else:
                mappings = req.get("mappings")
                if mappings and (mappings["uid"], mappings["gid"], mappings["size"]) != (c.uid, c.gid, c.size):
                    raise RequestError(f"container {cid} is registered with uid {c.uid} gid {c.gid} size "
                                       f"{c.size}; unregister it before changing its mapping", "conflict")
                for kind in set(c.special_dirs) - set(kinds):
                    specialdirs.remove(self.cfg.data_root, kind, cid)
                self.store.reregister(cid, rootfs, req.get("runtime_root"), kinds, peer, keep=bool(req.get("keep")))
                c = self.store.get(cid)
                assert c is not None
                log.info("re-registered %s: keeps uid %d gid %d", cid, c.uid, c.gid)
            for kind in kinds:
                try:
                    await trio.to_thread.run_sync(specialdirs.ensure, self.cfg.data_root, kind, cid,
                                                  c.uid, c.gid, c.size, rootfs)
                except specialdirs.TooDeep as e:
                    raise RequestError(f"special dir {SPECIAL_DIRS[kind]} of {rootfs}: {e.strerror}",
                                       "bad-request") from None
        return {"uid": c.uid, "gid": c.gid, "size": c.size, "restarted": restarted,
                "special_dirs": self._dirs(c)}

    async def op_validate(self, req: dict[str, Any], peer: Peer) -> dict[str, Any]:
        from sysbox.oci.spec import SpecError, validate

        try:
            validate(req["spec"])
        except SpecError as e:
            raise RequestError(str(e), "invalid-spec") from None
        return {}

    async def op_update(self, req: dict[str, Any], peer: Peer) -> dict[str, Any]:
        cid = req["id"]
        if self.store.get(cid) is None:
            raise RequestError(f"container {cid} is not registered", "not-found")
        fields: dict[str, Any] = {}
        if "pid" in req:
            fields["pid"], fields["pid_start"] = req["pid"], reconcile.start_time(req["pid"])
        if "state" in req:
            fields["state"] = req["state"]
        self.store.update(cid, **fields)
        return {}

    async def op_unregister(self, req: dict[str, Any], peer: Peer) -> dict[str, Any]:
        cid = req["id"]
        async with self._lock(cid):
            c = self.store.get(cid)
            if c is None:
                raise RequestError(f"container {cid} is not registered", "not-found")
            if req.get("keep"):
                self.store.update(cid, keep=1, state="stopped", pid=None, pid_start=None)
                log.info("%s stopped; keeping uid %d and its special dirs for a restart", cid, c.uid)
                return {"released": False}
            try:
                self.release(c, "unregistered")
            except specialdirs.BusyError as e:
                raise RequestError(str(e), "conflict") from None
        self.locks.pop(cid, None)
        return {"released": True}

async def gc_loop(mgr: Manager) -> None:
    while True:
        await trio.sleep(mgr.cfg.gc_interval)
        try:
            mgr.reconcile()
        except Exception:  # the next pass tries again
            log.exception("garbage collection pass failed")


async def serve(cfg: Config, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
    """Run until SIGTERM/SIGINT; the socket file is removed on the way out."""
    mgr = Manager(cfg)
    try:
        released = mgr.reconcile()
    except Exception:  # never a crash loop at start-up: serve, GC retries later
        log.exception("reconcile at start-up failed")
        released = []
    log.info("reconciled at start-up: %d containers kept, %d released%s", len(mgr.store.all()),
             len(released), f" ({', '.join(released)})" if released else "")
    listener = await ipcserver.listen(cfg.socket)
    try:
        async with trio.open_nursery() as nursery:
            await nursery.start(ipcserver.stop_on_signal, nursery.cancel_scope, log)
            nursery.start_soon(trio.serve_listeners, lambda s: ipcserver.serve_connection(mgr, s), [listener])
            nursery.start_soon(gc_loop, mgr)
            log.info("Ready: listening on %s (pool: %d ranges from uid %d, gid %d)", cfg.socket,
                     cfg.pool.slots, cfg.pool.uid_start, cfg.pool.gid_start)
            task_status.started()
    finally:
        try:
            os.unlink(cfg.socket)
        except FileNotFoundError:
            pass
        mgr.store.close()
        log.info("stopped")
