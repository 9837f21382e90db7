"""The server side of sysbox.ipc, shared by sysbox-mgr and sysbox-fs (trio).

A Service lists its requests' JSON Schemas and implements `op_<name>(request, peer)`; this
module validates, dispatches, turns every failure into an error reply (never a crash), and
caps line length.  `peer` is (pid, start time) of the connecting process, from SO_PEERCRED.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import struct
from typing import Any, ClassVar

import jsonschema
import trio

from sysbox import ipc
from sysbox.linux.proc import start_time  # re-exported (reconcile)
from sysbox.oci.spec import describe_error

Peer = tuple[int | None, int | None]


class RequestError(Exception):
    def __init__(self, msg: str, code: str) -> None:
        super().__init__(msg)
        self.code = code


class Service:
    REQUESTS: ClassVar[dict[str, dict[str, Any]]] = {}
    log = logging.getLogger("sysbox")

    def __init__(self) -> None:
        self.validators = {op: jsonschema.Draft202012Validator(s) for op, s in self.REQUESTS.items()}

    async def handle(self, line: bytes, peer: Peer) -> dict[str, Any]:
        try:
            try:
                req = json.loads(line)
            except (ValueError, UnicodeDecodeError) as e:
                raise RequestError(f"invalid JSON: {e}", "bad-request") from None
            except RecursionError:
                raise RequestError("invalid JSON: nested too deeply", "bad-request") from None
            if not isinstance(req, dict):
                raise RequestError(f"a request is a JSON object, got {type(req).__name__}", "bad-request")
            op = req.get("op")
            if op is None:
                raise RequestError("op: required field is missing", "bad-request")
            if not isinstance(op, str) or op not in self.REQUESTS:
                known = ", ".join(sorted(self.REQUESTS))
                raise RequestError(f"unknown op {str(op)[:40]!r}; known: {known}", "bad-request")
            errors = list(self.validators[op].iter_errors(req))
            if errors:
                raise RequestError(f"{op}: {describe_error(jsonschema.exceptions.best_match(errors))}",
                                   "bad-request")
            result = await getattr(self, f"op_{op}")(req, peer)
            return {"ok": True, "result": result}
        except RequestError as e:
            return {"ok": False, "error": str(e), "code": e.code}
        except Exception as e:  # one bad request must never take the daemon down
            self.log.exception("internal error handling a request")
            return {"ok": False, "error": f"internal error: {type(e).__name__}: {e}", "code": "internal"}


def peer_of(sock: trio.socket.SocketType) -> Peer:
    try:
        pid, _uid, _gid = struct.unpack("3i", sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, 12))
    except OSError:
        return None, None
    return pid, start_time(pid)


async def serve_connection(service: Service, stream: trio.SocketStream) -> None:
    peer = peer_of(stream.socket)
    buf = b""
    try:
        while True:
            data = await stream.receive_some(65536)
            if not data:
                return
            buf += data
            while b"\n" in buf:
                line, _, buf = buf.partition(b"\n")
                if line.strip():
                    await stream.send_all(ipc.encode(await service.handle(line, peer)))
            if len(buf) > ipc.MAX_MESSAGE:
                await stream.send_all(ipc.encode({"ok": False, "code": "too-large",
                                                  "error": f"request exceeds {ipc.MAX_MESSAGE} bytes"}))
                return
    except (trio.BrokenResourceError, trio.ClosedResourceError):
        return
    finally:
        await stream.aclose()


async def stop_on_signal(scope: trio.CancelScope, log: logging.Logger,
                         task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
    """Cancel `scope` at the first SIGTERM or SIGINT (start it with nursery.start: the handler is
    in place before the daemon says it is ready)."""
    import signal

    with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
        task_status.started()
        async for signum in signals:
            log.info("received %s, shutting down", signal.Signals(signum).name)
            scope.cancel()
            return


async def bind_unix(path: str) -> trio.socket.SocketType:
    """A listening root-only (0600) unix socket at path, replacing a stale socket file."""
    os.makedirs(os.path.dirname(path) or ".", mode=0o755, exist_ok=True)
    if os.path.exists(path):
        os.unlink(path)  # the caller's pid-file lock proved no other daemon owns it
    sock = trio.socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    old = os.umask(0o177)
    try:
        await sock.bind(path)
    finally:
        os.umask(old)
    sock.listen(512)
    return sock


async def listen(path: str) -> trio.SocketListener:
    return trio.SocketListener(await bind_unix(path))
