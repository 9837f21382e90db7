"""sysbox-fs's side of the fd holder (sysbox/fs/holder.py): find or start it, take what it
keeps, give it every new FUSE connection, tell it of those that ended.

Startup: connect (starting the holder, in its own session, if none answers), then read every
"have" up to "ready": the connections and listeners of a previous sysbox-fs, which the daemon
resumes.  Afterwards the holder pushes new seccomp listeners (runc's handovers) as they come.
If the holder itself dies, a new one is started and given everything again: while sysbox-fs
runs, it holds its own copies, so nothing is lost.
"""

from __future__ import annotations

import logging
import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

import trio

from sysbox.fs import holder as proto

log = logging.getLogger("sysbox-fs")
START_TIMEOUT = 10.0


class HolderClient:
    def __init__(self, socket_path: str, seccomp_socket: str, log_file: str | None = None) -> None:
        self.path, self.seccomp_socket, self.log_file = socket_path, seccomp_socket, log_file
        self.sock: socket.socket | None = None
        self.ours: dict[str, tuple[int, dict[str, Any]]] = {}  # what we gave it (to give a new one)
        self.on_have: Callable[[str, int, dict[str, Any]], None] | None = None
        self.on_message: Callable[[dict[str, Any]], None] | None = None  # notif, gone

    # -- connecting ------------------------------------------------------------------------------
    def _connect(self) -> socket.socket | None:
        s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET | socket.SOCK_CLOEXEC)
        try:
            s.connect(self.path)
            return s
        except OSError:
            s.close()
            return None

    def _spawn(self) -> None:
        argv = [sys.executable, "-m", "sysbox.fs.holder", "--socket", self.path, "--seccomp-socket",
                self.seccomp_socket, "--pid-file", self.path + ".pid"]
        if self.log_file:
            argv += ["--log", self.log_file]
        # its own session: a signal to sysbox-fs's process group does not reach it
        subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                         start_new_session=True, close_fds=True)

    def connect(self) -> list[tuple[str, int, dict[str, Any]]]:
        """Connect (starting a holder if needed); returns what it keeps: (name, fd, meta)."""
        s = self._connect()
        if s is None:
            self._spawn()
            deadline = time.monotonic() + START_TIMEOUT
            while s is None and time.monotonic() < deadline:
                time.sleep(0.02)
                s = self._connect()
            if s is None:
                raise OSError(f"the fd holder did not start at {self.path}")
        s.settimeout(START_TIMEOUT)
        kept = []
        while True:
            msg, fd = proto.recv(s)
            if msg is None:
                raise OSError("the fd holder closed the connection")
            if msg.get("op") == "ready":
                break
            if msg.get("op") == "have" and fd is not None:
                kept.append((str(msg.get("name")), fd, msg.get("meta") or {}))
            elif fd is not None:
                os.close(fd)
        s.setblocking(False)
        self.sock = s
        for name, (fd, meta) in self.ours.items():  # a new holder: give it everything again
            self._send({"op": "keep", "name": name, "meta": meta}, fd)
        return kept

    # -- talking -----------------------------------------------------------------------------------
    def _send(self, msg: dict[str, Any], fd: int | None = None) -> None:
        """In the trio thread (listen() may be waiting on the socket: it is woken to reconnect)."""
        if self.sock is None:
            return
        try:
            proto.send(self.sock, msg, fd)
        except OSError as e:
            log.warning("fd holder: %s (reconnecting)", e)
            trio.lowlevel.notify_closing(self.sock)
            self.sock.close()
            self.sock = None

    def keep(self, name: str, fd: int, meta: dict[str, Any]) -> None:
        self.ours[name] = (fd, meta)
        self._send({"op": "keep", "name": name, "meta": meta}, fd)

    def adopted(self, name: str, fd: int, meta: dict[str, Any]) -> None:
        """An fd the holder gave us: remembered, in case a new holder must be given it."""
        self.ours[name] = (fd, meta)

    def drop(self, name: str) -> None:
        self.ours.pop(name, None)
        self._send({"op": "drop", "name": name})

    def decided(self, name: str, nid: int, result: Any) -> None:
        self._send({"op": "decided", "name": name, "id": nid, "result": result})

    def answered(self, name: str, nid: int) -> None:
        self._send({"op": "answered", "name": name, "id": nid})

    async def _reconnect(self) -> None:
        try:
            kept = await trio.to_thread.run_sync(self.connect)
        except OSError as e:
            log.warning("fd holder: %s; trying again", e)
            await trio.sleep(1)
            return
        for name, held, meta in kept:
            if name in self.ours:
                os.close(held)  # ours already
            elif self.on_have is not None:
                self.on_have(name, held, meta)

    def _dispatch(self, msg: dict[str, Any], fd: int | None) -> None:
        if msg.get("op") == "have" and fd is not None and self.on_have is not None:
            self.on_have(str(msg.get("name")), fd, msg.get("meta") or {})
            return
        if fd is not None:
            os.close(fd)
        if self.on_message is not None:
            self.on_message(msg)

    def forget(self, name: str) -> None:
        """An fd the holder has already let go of (a listener whose processes are gone)."""
        self.ours.pop(name, None)

    async def listen(self) -> None:
        """Messages from the holder (new listeners, notifications); a lost holder is started
        again and given everything."""
        while True:
            if self.sock is None:
                await self._reconnect()
                continue
            sock = self.sock
            try:
                await trio.lowlevel.wait_readable(sock)
            except trio.ClosedResourceError:
                continue  # _send found it broken
            try:
                msg, fd = proto.recv(sock)
            except BlockingIOError:
                continue
            except OSError:
                msg, fd = None, None
            if msg is None:
                log.warning("fd holder gone: starting a new one")
                sock.close()
                self.sock = None
                continue
            self._dispatch(msg, fd)


def stop_holder(socket_path: str, timeout: float = 10.0) -> bool:
    """Stop the holder serving `socket_path` (by the pid it wrote), ending every connection
    and listener it keeps.  False if none ran."""
    import signal

    try:
        with open(socket_path + ".pid") as f:
            pid = int(f.read())
    except (FileNotFoundError, ValueError):
        return False
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return False
    deadline = time.monotonic() + timeout
    while os.path.exists(socket_path + ".pid") and time.monotonic() < deadline:
        time.sleep(0.02)
    return True
