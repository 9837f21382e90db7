"""Telling live containers from vanished ones, from facts on the host rather than memory.

A record is live if any of these holds:
- its init pid is alive (same pid *and* same start time, so a recycled pid does not count);
- the lower runtime still has its state dir (<runtime_root>/<id>/state.json): created,
  running or stopped-but-not-deleted containers;
- it is still being registered by a sysbox-runc process that is alive (between register
  and `runc create` there is nothing else to look at);
- it was stopped with keep=true and the directory holding its rootfs still exists (Docker
  stop/start: the layer directory outlives `merged` until `docker rm`).
"""

from __future__ import annotations

import os

from sysbox.ipcserver import start_time
from sysbox.mgr.store import Container

__all__ = ["alive", "liveness", "start_time"]


def alive(pid: int | None, start: int | None) -> bool:
    if not pid:
        return False
    now = start_time(pid)
    return now is not None and (start is None or now == start)


def liveness(c: Container) -> str | None:
    """Why the container counts as live, or None if it vanished."""
    if alive(c.pid, c.pid_start):
        return f"init pid {c.pid} alive"
    if c.runtime_root and os.path.exists(os.path.join(c.runtime_root, c.id, "state.json")):
        return "runtime state exists"
    if c.state == "registered" and alive(c.client_pid, c.client_start):
        return f"being created by pid {c.client_pid}"
    if c.keep and os.path.isdir(os.path.dirname(c.rootfs.rstrip("/"))):
        # Docker's overlay2 removes `merged` at every stop; its layer dir (the parent) lives
        # until `docker rm`.  containerd's bundle/rootfs goes with the bundle dir likewise.
        return "stopped, rootfs's parent still present"
    return None
