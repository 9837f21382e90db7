"""The FUSE server thread, with /dev/fuse replaced by SEQPACKET sockets (one message per
request and per answer, as /dev/fuse): turns between connections, the pool, closing."""

from __future__ import annotations

import os
import socket
import struct
import threading
import time

import pytest

from sysbox.fs import wire
from sysbox.fs.server import BATCH, Server


class Recorder:
    """A session that answers every request with its opcode, and records the order."""

    def __init__(self, name: str, log: list[str], slow_ops: frozenset[int] = frozenset(),
                 gate: threading.Event | None = None) -> None:
        self.name, self.log, self.slow_ops, self.gate = name, log, slow_ops, gate

    def slow(self, req: wire.Request) -> bool:
        return req.opcode in self.slow_ops

    def handle(self, req: wire.Request) -> bytes:
        if req.opcode in self.slow_ops and self.gate is not None:
            self.gate.wait(10)
        self.log.append(f"{self.name}:{req.unique}")
        return wire.reply(req.unique, struct.pack("<I", req.opcode))


def request(opcode: int, unique: int) -> bytes:
    return wire.IN_HEADER.pack(wire.IN_HEADER.size, opcode, unique, 1, 0, 0, 1, 0, 0)


@pytest.fixture
def server():
    s = Server()
    s.start()
    yield s
    s.stop()


def pair() -> tuple[socket.socket, int]:
    kernel, ours = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    os.set_blocking(ours.fileno(), False)
    return kernel, ours.detach()


def answers(sock: socket.socket, n: int) -> list[int]:
    sock.settimeout(10)
    return [wire.OUT_HEADER.unpack(sock.recv(4096)[:16])[2] for _ in range(n)]


def test_a_flooded_connection_takes_turns_with_its_neighbour():
    log: list[str] = []
    a, a_fd = pair()
    b, b_fd = pair()
    for i in range(5 * BATCH):
        a.send(request(wire.GETATTR, i))
    b.send(request(wire.GETATTR, 1000))
    server = Server()  # both connections known before it serves: the turns are then the test
    server.add(a_fd, Recorder("a", log))  # type: ignore[arg-type]
    server.add(b_fd, Recorder("b", log))  # type: ignore[arg-type]
    server.start()
    try:
        assert answers(a, 5 * BATCH) == list(range(5 * BATCH)) and answers(b, 1) == [1000]
    finally:
        server.stop()
    assert log.index("b:1000") <= BATCH  # served after at most one batch of the flood


def test_slow_requests_are_answered_from_the_pool_while_others_go_on(server):
    log: list[str] = []
    gate = threading.Event()
    a, a_fd = pair()
    server.add(a_fd, Recorder("a", log, frozenset({wire.WRITE}), gate))  # type: ignore[arg-type]
    a.send(request(wire.WRITE, 1))
    a.send(request(wire.GETATTR, 2))
    assert answers(a, 1) == [2]  # not behind the write
    gate.set()
    assert answers(a, 1) == [1]


def test_removed_connections_are_closed_by_the_thread(server):
    a, a_fd = pair()
    server.add(a_fd, Recorder("a", []))  # type: ignore[arg-type]
    server.remove(a_fd)
    deadline = time.monotonic() + 10
    while a_fd in server.sessions and time.monotonic() < deadline:
        time.sleep(0.01)
    assert a_fd not in server.sessions
    a.settimeout(5)
    assert a.recv(10) == b""  # the other end was closed


def test_a_connection_that_ends_is_dropped(server):
    a, a_fd = pair()
    server.add(a_fd, Recorder("a", []))  # type: ignore[arg-type]
    a.close()  # the socket reads EOF: b"" rather than ENODEV; a request of 0 bytes is not one
    deadline = time.monotonic() + 10
    while a_fd in server.sessions and time.monotonic() < deadline:
        time.sleep(0.01)
    assert a_fd not in server.sessions  # closed, not read again and again
    b, b_fd = pair()
    server.add(b_fd, Recorder("b", []))  # type: ignore[arg-type]
    b.send(request(wire.GETATTR, 9))
    assert answers(b, 1) == [9]  # the server still serves the others
