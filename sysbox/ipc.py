"""JSON lines over a unix stream socket: the framing shared by the daemons and their clients.

One request is one JSON object on one line; one reply likewise.  Lines are capped at
MAX_MESSAGE bytes so a peer cannot make a daemon buffer without bound.  The client side is
plain `_socket` + `jsonfast` (no `json`, `re` or `enum` to import) because sysbox-runc runs it on every create.
"""

from __future__ import annotations

import _socket  # socket.py builds its enums at import (~2 ms); the client needs none of them

from sysbox import jsonfast as json
from sysbox.typing_lite import TYPE_CHECKING

if TYPE_CHECKING:
    from typing import Any, Self

from sysbox.errors import SysboxError

MAX_MESSAGE = 1 << 20


class IPCError(SysboxError):
    """The daemon could not be reached, or replied with an error (str() is one line)."""

    def __init__(self, msg: str, code: str = "unavailable") -> None:
        super().__init__(msg)
        self.code = code


def encode(obj: Any) -> bytes:
    return json.dumps(obj, compact=True).encode() + b"\n"


class LineClient:
    """A blocking client: connect once, then call(op, **args) for each request."""

    def __init__(self, path: str, timeout: float = 30.0, name: str = "daemon") -> None:
        self.path, self.timeout, self.name = path, timeout, name
        self._sock: _socket.socket | None = None
        self._buf = b""

    def _connect(self) -> _socket.socket:
        if self._sock is None:
            sock = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM | _socket.SOCK_CLOEXEC)
            sock.settimeout(self.timeout)
            try:
                sock.connect(self.path)
            except OSError as e:
                sock.close()
                # "unreachable": nothing listens (yet); the request was never sent
                raise IPCError(f"cannot reach {self.name} at {self.path}: {e.strerror or e}", "unreachable") from None
            self._sock = sock
        return self._sock

    def request(self, message: dict[str, Any]) -> dict[str, Any]:
        sock = self._connect()
        try:
            sock.sendall(encode(message))
            while b"\n" not in self._buf:
                chunk = sock.recv(65536)
                if not chunk:
                    raise IPCError(f"{self.name} at {self.path} closed the connection")
                self._buf += chunk
                if len(self._buf) > MAX_MESSAGE:
                    raise IPCError(f"{self.name} reply exceeds {MAX_MESSAGE} bytes")
        except OSError as e:
            self.close()
            raise IPCError(f"{self.name} at {self.path}: {e.strerror or e}") from None
        line, _, self._buf = self._buf.partition(b"\n")
        return json.loads(line)

    def call(self, op: str, **args: Any) -> Any:
        """Send one request; return its result or raise IPCError with the daemon's message."""
        reply = self.request({"op": op, **args})
        if not reply.get("ok"):
            raise IPCError(reply.get("error", "unknown error"), reply.get("code", "error"))
        return reply.get("result")

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
