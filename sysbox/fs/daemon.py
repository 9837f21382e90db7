"""sysbox-fs's server: the FUSE session, the control socket and the loadavg sampler, on trio."""

from __future__ import annotations

import logging
import os
import uuid
from dataclasses import dataclass
from typing import Any

import trio

from sysbox import __version__, ipcserver
from sysbox.fs.connections import Connections
from sysbox.fs.handover import HolderClient
from sysbox.fs.nodes import proc_loadavg
from sysbox.fs.protocol import REQUESTS
from sysbox.fs.recovery import Records, keep_state, reattach, recover
from sysbox.fs.registry import Registry
from sysbox.fs.server import Server
from sysbox.fs.trap.listener import Trap
from sysbox.ipcserver import Peer, RequestError
from sysbox.linux.proc import start_time

log = logging.getLogger("sysbox-fs")


@dataclass
class Config:
    socket: str
    mountpoint: str
    seccomp_socket: str
    state_dir: str = "/run/sysbox/fs"
    holder_socket: str | None = None  # the fd holder (holder.py); None: restarts are seen by containers
    holder_log: str | None = None


class FsService(ipcserver.Service):
    REQUESTS = REQUESTS
    log = log

    def __init__(self, registry: Registry, cfg: Config, trap: Trap, records: Records, conns: Connections) -> None:
        super().__init__()
        self.registry, self.cfg, self.trap, self.records, self.conns = registry, cfg, trap, records, conns
        self.instance = uuid.uuid4().hex  # which sysbox-fs a create saw: see op_register

    async def op_ping(self, req: dict[str, Any], peer: Peer) -> dict[str, Any]:
        return {"version": __version__, "pid": os.getpid(), "mountpoint": self.cfg.mountpoint,
                "seccomp_socket": self.cfg.seccomp_socket, "instance": self.instance}

    async def op_status(self, req: dict[str, Any], peer: Peer) -> dict[str, Any]:
        return {"mountpoint": self.cfg.mountpoint, "trapped": self.trap.served, "emulated_mounts": self.trap.emulated,
                "trap_failed": self.trap.failed, "trap_listeners": self.trap.listeners,
                "fuse_requests": sum(conn.session.requests for conn in self.conns.by_id.values()),
                "containers": [c.public() for c in self.registry.by_id.values()]}

    async def op_prepare(self, req: dict[str, Any], peer: Peer) -> dict[str, Any]:
        """The container's own connection, before `runc create` binds its nodes."""
        if req["id"] in self.registry.by_id:
            raise RequestError(f"prepare: {req['id']} is registered", "bad-request")
        try:
            conn = self.conns.open(req["id"], req["uid"], req["gid"])
        except (OSError, ValueError) as e:
            raise RequestError(f"prepare: {e}", "bad-request") from None
        return {"mountpoint": conn.path}

    async def op_register(self, req: dict[str, Any], peer: Peer) -> dict[str, Any]:
        try:
            c = self.registry.add(req["id"], req["pid"], req["uid"], req["gid"], req["size"], req.get("masked"),
                                  req.get("immutable"))
        except FileNotFoundError:
            raise RequestError(f"register: pid {req['pid']} does not exist", "not-found") from None
        except (OSError, ValueError) as e:
            raise RequestError(f"register: {e}", "bad-request") from None
        except KeyError as e:
            raise RequestError(f"register: {e}", "bad-request") from None
        try:  # for a restarted sysbox-fs (recovery.py)
            rec = {"id": req["id"], "pid": req["pid"], "uid": req["uid"], "gid": req["gid"], "size": req["size"],
                   "masked": req.get("masked") or [], "immutable": req.get("immutable") or [],
                   "start": start_time(req["pid"])}
            self.records.save(req["id"], rec)
            keep_state(self.records, c, rec)
        except (OSError, ValueError) as e:
            log.warning("could not record %s for recovery: %s", req["id"], e)
        conn = self.conns.by_id.get(req["id"])
        if conn is not None and conn.fs.container is None and req.get("instance") in (None, self.instance):
            conn.fs.container, c.mountpoint = c, conn.path
        else:
            # the spec bound the mount of a sysbox-fs that has died since (or none was
            # prepared): a connection of ours goes on top, inside the container
            try:
                conn = self.conns.open(req["id"], req["uid"], req["gid"])
            except OSError as e:
                self.registry.remove(req["id"])
                raise RequestError(f"register: {e}", "bad-request") from None
            conn.fs.container, c.mountpoint = c, conn.path
            failed = await trio.to_thread.run_sync(reattach, conn.path, req["pid"])
            c.forget_mounts()
            log.info("re-attached %s, created under a previous sysbox-fs%s", req["id"],
                     f" (failed: {'; '.join(failed)})" if failed else "")
        log.info("registered %s (pid %d, uid %d)", req["id"], req["pid"], req["uid"])
        return {}

    async def op_unregister(self, req: dict[str, Any], peer: Peer) -> dict[str, Any]:
        removed = self.registry.remove(req["id"])
        removed = self.conns.close(req["id"]) or removed
        self.records.drop(str(req["id"]))
        if removed:
            log.info("unregistered %s", req["id"])
        return {"removed": removed}


async def sample_load(registry: Registry) -> None:
    """Every INTERVAL, each container's load, in a worker thread (its cgroup tree is the
    container's to shape), one container at a time; a failure is that container's alone."""
    failing: set[str] = set()
    while True:
        await trio.sleep(proc_loadavg.INTERVAL)
        for c in list(registry.by_id.values()):
            try:
                await trio.to_thread.run_sync(proc_loadavg.sample, c)
                failing.discard(c.id)
            except Exception as e:  # noqa: BLE001 - one container's tree never stops the daemon
                if c.id not in failing:
                    log.warning("loadavg of %s: %s: %s (sampling goes on)", c.id, type(e).__name__, e)
                    failing.add(c.id)


async def serve(cfg: Config, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
    registry = Registry(cfg.state_dir)
    server = Server()
    holder = HolderClient(cfg.holder_socket, cfg.seccomp_socket, cfg.holder_log) if cfg.holder_socket else None
    # what a previous sysbox-fs left with the holder: its connections and listeners, alive
    kept = await trio.to_thread.run_sync(holder.connect) if holder else []
    held_fuse = {str(meta.get("id")): (fd, meta) for name, fd, meta in kept if name.startswith("fuse/")}
    held_listeners = [(name, fd) for name, fd, _meta in kept if name.startswith("seccomp/")]
    conns = Connections(cfg.mountpoint, server, cfg.state_dir, holder)
    # the dead connections of a sysbox-fs killed without a holder cannot even be stat'ed (ENOTCONN)
    if conns.sweep(keep=frozenset(held_fuse)):
        log.warning("unmounted the stale FUSE mounts under %s", cfg.mountpoint)
    os.makedirs(cfg.mountpoint, mode=0o755, exist_ok=True)
    listener = await ipcserver.listen(cfg.socket)
    trap = Trap(registry, holder)
    records = Records(cfg.state_dir)
    service = FsService(registry, cfg, trap, records, conns)
    server.start()
    clean_stop = False
    try:
        async with trio.open_nursery() as nursery:
            await nursery.start(ipcserver.stop_on_signal, nursery.cancel_scope, log)
            nursery.start_soon(trio.serve_listeners, lambda s: ipcserver.serve_connection(service, s), [listener])
            nursery.start_soon(sample_load, registry)
            if holder is None:
                await nursery.start(trap.serve, cfg.seccomp_socket)
            # in a thread: re-attaching looks our own nodes up through FUSE, served by the server
            recovered, dropped = await trio.to_thread.run_sync(recover, records, registry, conns,
                                                                trio.lowlevel.current_trio_token(), held_fuse)
            if recovered or dropped:
                log.info("after restart: %d running containers recovered, %d records dropped", recovered, dropped)
            if holder is not None:
                # only now: a trapped call is decided for its container, which must be known again
                await nursery.start(trap.serve_adopted)
                for name, fd in held_listeners:
                    trap.adopt(name, fd)
                holder.on_have = lambda name, fd, meta: (
                    trap.adopt(name, fd) if name.startswith("seccomp/") else os.close(fd))
                holder.on_message = trap.on_message
                nursery.start_soon(holder.listen)
            log.info("Ready: FUSE at %s, listening on %s", cfg.mountpoint, cfg.socket)
            task_status.started()
        clean_stop = True
    finally:
        if holder is not None:
            # stopped or killed alike, the holder keeps every connection and listener for the
            # next sysbox-fs (an upgrade is a stop and a start): nothing is ended here
            conns.release_all()
        else:
            conns.close_all()
        server.stop()
        for cid in list(registry.by_id):  # the records stay, so the next sysbox-fs can restore them
            registry.remove(cid)
        for path in (cfg.socket,) if holder is not None else (cfg.socket, cfg.seccomp_socket):
            try:
                os.unlink(path)
            except FileNotFoundError:
                pass
        log.info("stopped%s", "" if clean_stop else " (on an error)")
