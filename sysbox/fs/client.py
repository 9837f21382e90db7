"""The client sysbox-runc uses to register containers with sysbox-fs (socket + json only)."""

from __future__ import annotations

from sysbox.fs.protocol import DEFAULT_SOCKET
from sysbox.ipc import IPCError, LineClient

__all__ = ["Client", "IPCError"]


class Client(LineClient):
    def __init__(self, path: str | None = None, timeout: float = 10.0) -> None:
        super().__init__(path or DEFAULT_SOCKET, timeout, name="sysbox-fs")
