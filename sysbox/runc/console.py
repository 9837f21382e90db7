"""The terminal of a foreground `run` with `process.terminal: true`, as `runc run` gives it.

runc can only create such a container with a console socket (run is our create + runc's start),
so we are the socket's listener: runc sends the pty master there, and we do what `runc run`
does with it - our stdin raw while the container runs (if it is a terminal), the pty sized like
it and resized on SIGWINCH, stdin copied to the master and the master to stdout.
"""

from __future__ import annotations

import errno
import os
import selectors
import shutil
import socket
import sys
import tempfile
import termios

from sysbox.errors import SysboxError
from sysbox.typing_lite import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Self

RECEIVE_TIMEOUT = 30.0  # runc sends the master during create, which has returned by then
DRAIN_IDLE = 1.0  # after init exits: how long the master may stay quiet before we stop reading


class ConsoleSocket:
    """A listening socket in a private directory; `receive()` returns the pty master."""

    def __init__(self) -> None:
        self._dir = tempfile.mkdtemp(prefix="sysbox-console-")
        self.path = os.path.join(self._dir, "console.sock")
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
        self._sock.bind(self.path)
        self._sock.listen(1)

    def receive(self) -> int:
        self._sock.settimeout(RECEIVE_TIMEOUT)
        try:
            conn, _ = self._sock.accept()
        except TimeoutError:
            raise SysboxError("process.terminal: runc sent no terminal to the console socket") from None
        with conn:
            conn.settimeout(RECEIVE_TIMEOUT)
            _, fds, _, _ = socket.recv_fds(conn, 4096, 1)
        if not fds:
            raise SysboxError("process.terminal: runc sent no terminal to the console socket")
        return fds[0]

    def close(self) -> None:
        self._sock.close()
        shutil.rmtree(self._dir, ignore_errors=True)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def copy_size(src: int, master: int) -> None:
    """Give the pty the size of our terminal (nothing if ours is not one)."""
    from sysbox.linux import tty

    size = tty.window_size(src)
    if size is not None and size[:2] != (0, 0):
        tty.set_window_size(master, size)


class Raw:
    """Our stdin in raw mode for the container's life, as runc sets it; restored on exit."""

    def __init__(self, fd: int) -> None:
        self.fd, self._saved = fd, None
        try:
            self._saved = termios.tcgetattr(fd)
        except termios.error:
            return
        import tty

        tty.setraw(fd, termios.TCSANOW)

    def restore(self) -> None:
        if self._saved is not None:
            termios.tcsetattr(self.fd, termios.TCSANOW, self._saved)


def _write_all(fd: int, data: bytes) -> None:
    while data:
        data = data[os.write(fd, data):]


def _read(fd: int) -> bytes | None:
    """Bytes read, b"" at the end (EIO is a pty master's end), None if nothing is there yet."""
    try:
        return os.read(fd, 65536)
    except BlockingIOError:
        return None
    except OSError as e:
        if e.errno == errno.EIO:
            return b""
        raise


def relay(master: int, exited: Callable[[], bool]) -> None:  # noqa: C901 - one loop over the master, stdin and init; the order of checks is the logic
    """Copy stdin to the master and the master to stdout until the container's init has
    exited and the master has nothing more to say (EIO: every holder of the pty is gone).
    Input the container does not read yet is kept, not dropped, and does not stop output."""
    stdin, stdout = sys.stdin.fileno(), sys.stdout.fileno()
    os.set_blocking(master, False)
    sel = selectors.DefaultSelector()
    sel.register(master, selectors.EVENT_READ)
    try:
        sel.register(stdin, selectors.EVENT_READ)
    except (ValueError, OSError):  # stdin closed, or a regular file: nothing to copy
        pass
    pending = b""
    done = False
    master_open = True
    while True:
        done = done or exited()
        if done and not master_open:
            return
        events = sel.select(DRAIN_IDLE if done else 0.2)
        if done and not events:
            return
        for key, mask in events:
            if key.fd == master and mask & selectors.EVENT_WRITE and pending:
                try:
                    pending = pending[os.write(master, pending):]
                except BlockingIOError:
                    pass
            if key.fd == master and mask & selectors.EVENT_READ:
                data = _read(master)
                if data:
                    _write_all(stdout, data)
                elif data == b"":
                    master_open = False
                    sel.unregister(master)
                    pending = b""
                    continue
            if key.fd == stdin:
                data = os.read(stdin, 65536)
                if not data:
                    sel.unregister(stdin)  # EOF: like runc, the container's terminal stays open
                elif master_open:
                    pending += data
            if master_open:
                sel.modify(master, selectors.EVENT_READ | (selectors.EVENT_WRITE if pending else 0))
