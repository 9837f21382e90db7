"""`sysbox start --all --watch`: keep --restart always VMs up, as dockerd does for its
containers, without a daemon of our own running beside them otherwise.

Each such VM's init is watched through a pidfd (no polling of the runtime): when it exits and
the VM was not stopped by `sysbox stop`, it is started again.  A VM that keeps dying right
after its start waits longer each time (1 s doubling to 60 s), so a broken one cannot spin.
The store is re-read every few seconds for VMs made or started meanwhile.
"""

from __future__ import annotations

import os
import select
import sys
import threading
import time
from typing import Any

from sysbox.devvm import commands
from sysbox.devvm.commands import Env
from sysbox.errors import SysboxError

QUICK_EXIT = 10.0  # an exit sooner than this after a start counts as a crash loop
MAX_DELAY = 60.0


def _say(msg: str) -> None:
    print(f"sysbox watch: {msg}", file=sys.stderr, flush=True)


def _init_pidfd(env: Env, meta: dict[str, Any]) -> int | None:
    """A pidfd of the VM's init, if the runtime agrees it is running (so a recycled pid in a
    stale init.pid is never watched)."""
    try:
        with open(os.path.join(env.store.cdir(meta["name"]), "init.pid")) as f:
            pid = int(f.read().strip())
        fd = os.pidfd_open(pid)
    except (OSError, ValueError):
        return None
    if commands.status(env, meta) != "running":
        os.close(fd)
        return None
    return fd


class Watcher:
    def __init__(self, env: Env, rescan: float = 3.0) -> None:
        self.env, self.rescan = env, rescan
        self.fds: dict[str, int] = {}
        self.delay: dict[str, float] = {}
        self.due: dict[str, float] = {}  # name -> when to try starting it again
        self.started: dict[str, float] = {}
        self.stopping = threading.Event()

    def _scan(self) -> None:
        for name in self.env.store.names():
            if name in self.fds or name in self.due:
                continue
            try:
                meta = self.env.store.load(name)
            except SysboxError:
                continue
            if meta.get("restart") != "always" or meta.get("state") != "running":
                continue
            fd = _init_pidfd(self.env, meta)
            if fd is None:
                self.due[name] = time.monotonic()  # died while nobody watched
            else:
                self.fds[name] = fd

    def _restart(self, name: str) -> None:
        self.due.pop(name, None)
        started = time.monotonic()
        try:
            if not commands.restart_if_died(self.env, name):
                return
            _say(f"{name} exited; started it again")
        except SysboxError as e:
            _say(f"{name}: {e}")
        try:
            meta = self.env.store.load(name)
        except SysboxError:
            return
        fd = _init_pidfd(self.env, meta) if meta.get("state") == "running" else None
        if fd is not None:
            self.fds[name] = fd
        self.started[name] = started

    def _exited(self, name: str) -> None:
        os.close(self.fds.pop(name))
        lived = time.monotonic() - self.started.get(name, 0.0)
        delay = min(MAX_DELAY, self.delay.get(name, 0.5) * 2) if lived < QUICK_EXIT else 1.0
        self.delay[name] = delay
        self.due[name] = time.monotonic() + (delay if lived < QUICK_EXIT else 0.0)

    def run(self) -> None:
        next_scan = 0.0
        try:
            while not self.stopping.is_set():
                now = time.monotonic()
                if now >= next_scan:
                    self._scan()
                    next_scan = now + self.rescan
                for name, when in sorted(self.due.items(), key=lambda kv: kv[1]):
                    if when <= time.monotonic():
                        self._restart(name)
                waits = [next_scan] + list(self.due.values())
                timeout = max(0.0, min(waits) - time.monotonic())
                poller = select.poll()
                by_fd = {fd: name for name, fd in self.fds.items()}
                for fd in by_fd:
                    poller.register(fd, select.POLLIN)
                for fd, _ in poller.poll(min(timeout, 1.0) * 1000):
                    self._exited(by_fd[fd])
        finally:
            for fd in self.fds.values():
                os.close(fd)
            self.fds.clear()
