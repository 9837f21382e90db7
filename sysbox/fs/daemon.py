"""sysbox-fs's server: the FUSE session, the control socket and the loadavg sampler, on trio."""

from __future__ import annotations

import logging
import os
import uuid
from dataclasses import dataclass
from typing import Any

import pyfuse3
import trio

from sysbox import __version__, ipcserver
from sysbox.fs.fuse import SysboxFS
from sysbox.fs.nodes import proc_loadavg
from sysbox.fs.protocol import REQUESTS
from sysbox.fs.recovery import Records, reattach, recover
from sysbox.fs.registry import Registry
from sysbox.fs.trap.listener import Trap
from sysbox.ipcserver import Peer, RequestError
from sysbox.linux.proc import start_time
from sysbox.linux.tree import detach_all

log = logging.getLogger("sysbox-fs")


@dataclass
class Config:
    socket: str
    mountpoint: str
    seccomp_socket: str
    state_dir: str = "/run/sysbox/fs"


class FsService(ipcserver.Service):
    REQUESTS = REQUESTS
    log = log

    def __init__(self, registry: Registry, cfg: Config, trap: Trap, records: Records) -> None:
        super().__init__()
        self.registry, self.cfg, self.trap, self.records = registry, cfg, trap, records
        self.instance = uuid.uuid4().hex  # which sysbox-fs a create saw: see op_register
        self.ops: SysboxFS | None = None  # the FUSE operations, for per-container inode cleanup

    async def op_ping(self, req: dict[str, Any], peer: Peer) -> dict[str, Any]:
        return {"version": __version__, "pid": os.getpid(), "mountpoint": self.cfg.mountpoint,
                "seccomp_socket": self.cfg.seccomp_socket, "instance": self.instance}

    async def op_status(self, req: dict[str, Any], peer: Peer) -> dict[str, Any]:
        return {"mountpoint": self.cfg.mountpoint, "trapped": self.trap.served, "emulated_mounts": self.trap.emulated,
                "trap_failed": self.trap.failed, "trap_listeners": self.trap.listeners,
                "containers": [c.public() for c in self.registry.by_id.values()]}

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
            self.records.save(req["id"], {"id": req["id"], "pid": req["pid"], "uid": req["uid"], "gid": req["gid"],
                                          "size": req["size"], "masked": req.get("masked") or [],
                                          "immutable": req.get("immutable") or [],
                                          "start": start_time(req["pid"])})
        except (OSError, ValueError) as e:
            log.warning("could not record %s for recovery: %s", req["id"], e)
        if req.get("instance") not in (None, self.instance):
            # the spec bound the mount of a sysbox-fs that has died since: attach ours on top
            failed = await trio.to_thread.run_sync(reattach, self.cfg.mountpoint, req["pid"])
            c.forget_mounts()
            log.info("re-attached %s, created under a previous sysbox-fs%s", req["id"],
                     f" (failed: {'; '.join(failed)})" if failed else "")
        log.info("registered %s (pid %d, uid %d)", req["id"], req["pid"], req["uid"])
        return {}

    async def op_unregister(self, req: dict[str, Any], peer: Peer) -> dict[str, Any]:
        c = self.registry.by_id.get(req["id"])
        removed = self.registry.remove(req["id"])
        if c is not None and self.ops is not None:
            self.ops.forget_owner(c.userns)
        self.records.drop(str(req["id"]))
        if removed:
            log.info("unregistered %s", req["id"])
        return {"removed": removed}


def _unmount_stale(mountpoint: str) -> None:
    """A previous sysbox-fs that died leaves its mount behind ("Transport endpoint is not connected")."""
    if detach_all(mountpoint):
        log.warning("unmounted a stale mount at %s", mountpoint)


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
    _unmount_stale(cfg.mountpoint)  # first: a dead FUSE mount cannot even be stat'ed (ENOTCONN)
    os.makedirs(cfg.mountpoint, mode=0o755, exist_ok=True)
    options = set(pyfuse3.default_options) - {"default_permissions"}
    options |= {"fsname=sysboxfs", "subtype=sysboxfs", "allow_other", "nosuid", "nodev", "noexec"}
    ops = SysboxFS(registry)
    pyfuse3.init(ops, cfg.mountpoint, options)
    listener = await ipcserver.listen(cfg.socket)
    trap = Trap(registry, cfg.mountpoint)
    records = Records(cfg.state_dir)
    service = FsService(registry, cfg, trap, records)
    service.ops = ops
    try:
        async with trio.open_nursery() as nursery:
            await nursery.start(ipcserver.stop_on_signal, nursery.cancel_scope, log)
            nursery.start_soon(pyfuse3.main)
            nursery.start_soon(trio.serve_listeners, lambda s: ipcserver.serve_connection(service, s), [listener])
            nursery.start_soon(sample_load, registry)
            await nursery.start(trap.serve, cfg.seccomp_socket)
            # after pyfuse3.main runs: re-attaching looks our own nodes up through FUSE
            recovered, dropped = await trio.to_thread.run_sync(recover, records, registry, cfg.mountpoint)
            if recovered or dropped:
                log.info("after restart: %d running containers recovered, %d records dropped", recovered, dropped)
            log.info("Ready: FUSE at %s, listening on %s", cfg.mountpoint, cfg.socket)
            task_status.started()
    finally:
        pyfuse3.close(unmount=True)
        for cid in list(registry.by_id):  # a clean stop: its containers lose their nodes, as at a crash,
            registry.remove(cid)          # but keep their records so the next sysbox-fs can restore them
        for path in (cfg.socket, cfg.seccomp_socket):
            try:
                os.unlink(path)
            except FileNotFoundError:
                pass
        log.info("stopped")
