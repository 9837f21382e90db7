"""The thread that serves every container's FUSE connection.

One epoll over the connections' /dev/fuse fds, in a plain thread: a request costs a read, a
handler and a write, with no event-loop scheduling around them (through trio, each request
cost ~100 us of CPU; most of it was the loop, not the answer).  Connections take turns: at
most BATCH requests of one connection are answered before the next readable one, so a
container flooding its own connection delays a neighbour by a bounded amount.  Requests that
fork or wait (Session.slow: writes made as the container's root, id knobs) go to a small pool
and are answered from there; the kernel accepts answers in any order.

Only this thread closes a connection's fd (Server.remove asks it to): an fd closed under a
reader could be reused by another open before the reader sees it.
"""

from __future__ import annotations

import errno
import logging
import os
import select
import threading
from concurrent.futures import ThreadPoolExecutor

from sysbox.fs import wire
from sysbox.fs.session import Session
from sysbox.linux import fusedev

log = logging.getLogger("sysbox-fs")
BATCH = 8  # requests of one connection answered before the next connection's turn
POOL = 4  # threads for the slow requests


class Server:
    def __init__(self) -> None:
        self.sessions: dict[int, Session] = {}
        self.epoll = select.epoll()
        self.wake_r, self.wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        self.epoll.register(self.wake_r, select.EPOLLIN)
        self.closing: list[int] = []
        self.lock = threading.Lock()
        self.pool = ThreadPoolExecutor(POOL, thread_name_prefix="sysbox-fs-slow")
        self.thread = threading.Thread(target=self._loop, name="sysbox-fs-fuse", daemon=True)
        self.stopping = False

    def start(self) -> None:
        self.thread.start()

    def add(self, fd: int, session: Session) -> None:
        with self.lock:
            self.sessions[fd] = session
        self.epoll.register(fd, select.EPOLLIN)

    def remove(self, fd: int) -> None:
        """Stop serving `fd` and close it (in the serving thread)."""
        with self.lock:
            self.closing.append(fd)
        os.write(self.wake_w, b"x")

    def stop(self) -> None:
        self.stopping = True
        os.write(self.wake_w, b"x")
        self.thread.join(10)
        self.pool.shutdown(wait=True, cancel_futures=True)
        for fd in list(self.sessions):
            self._close(fd)
        self.epoll.close()
        os.close(self.wake_r)
        os.close(self.wake_w)

    # -- the serving thread ------------------------------------------------------------------------
    def _close(self, fd: int) -> None:
        with self.lock:
            if self.sessions.pop(fd, None) is None:
                return
        try:
            self.epoll.unregister(fd)
        except (OSError, ValueError):
            pass
        os.close(fd)

    def _loop(self) -> None:
        while not self.stopping:
            try:
                events = self.epoll.poll()
            except InterruptedError:
                continue
            for fd, _ev in events:
                try:
                    if fd == self.wake_r:
                        self._control()
                        continue
                    session = self.sessions.get(fd)
                    if session is not None:
                        self._serve(fd, session)
                except Exception:
                    log.exception("FUSE server: fd %d", fd)

    def _control(self) -> None:
        try:
            while os.read(self.wake_r, 4096):
                pass
        except BlockingIOError:
            pass
        with self.lock:
            closing, self.closing = self.closing, []
        for fd in closing:
            self._close(fd)

    def _serve(self, fd: int, session: Session) -> None:
        for _ in range(BATCH):
            try:
                buf = fusedev.read(fd, wire.BUFSIZE)
            except OSError as e:
                if e.errno != errno.ENODEV:
                    log.warning("%s: reading its FUSE connection: %s", session.name, e)
                self._close(fd)  # unmounted and no bind left: the connection is over
                return
            if buf is None:
                return
            if not buf:  # no request is empty: the connection is gone
                self._close(fd)
                return
            try:
                req = wire.Request(buf)
                if session.slow(req):
                    self.pool.submit(self._answer_later, os.dup(fd), session, req)
                    continue
                out = session.handle(req)
                if out is not None:
                    fusedev.write(fd, out)
            except Exception:
                log.exception("%s: a request could not be answered", session.name)

    @staticmethod
    def _answer_later(fd: int, session: Session, req: wire.Request) -> None:
        """On the pool, through a dup of the connection's fd (the original may be closed by
        then; the dup keeps the answer on the same connection)."""
        try:
            out = session.handle(req)
            if out is not None:
                fusedev.write(fd, out)
        except Exception:
            log.exception("%s: a request could not be answered", session.name)
        finally:
            os.close(fd)
