"""The fd holder on its own (in a thread, on private sockets): what a sysbox-fs gives it
comes back to the next one, the same open file; what it drops is gone; runc's handovers wait
for a sysbox-fs; a quit ends it."""

from __future__ import annotations

import array
import os
import socket
import threading

import pytest

from sysbox.fs import holder as proto
from sysbox.fs.handover import HolderClient


@pytest.fixture
def held(tmp_path):
    h = proto.Holder(str(tmp_path / "h.sock"), str(tmp_path / "s.sock"))
    t = threading.Thread(target=h.run, daemon=True)
    t.start()
    yield h, tmp_path
    c = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    c.connect(str(tmp_path / "h.sock"))
    proto.recv(c)  # its "ready"
    proto.send(c, {"op": "quit"})
    t.join(10)
    c.close()
    h.close()


def client(tmp_path) -> HolderClient:
    return HolderClient(str(tmp_path / "h.sock"), str(tmp_path / "s.sock"))


def test_what_a_daemon_kept_comes_back_to_the_next_one(held):
    _h, tmp = held
    first = client(tmp)
    assert first.connect() == []
    r, w = os.pipe()
    first.keep("fuse/c1", r, {"id": "c1", "uid": 7})
    os.close(r)
    assert first.sock is not None
    first.sock.close()  # the daemon dies
    second = client(tmp)
    kept = second.connect()
    assert [(name, meta) for name, _fd, meta in kept] == [("fuse/c1", {"id": "c1", "uid": 7})]
    os.write(w, b"same file")
    assert os.read(kept[0][1], 100) == b"same file"
    second.drop("fuse/c1")
    os.close(kept[0][1])
    assert second.sock is not None
    second.sock.close()
    assert client(tmp).connect() == []  # dropped: closed by the holder too
    os.close(w)


def test_a_handover_from_runc_waits_for_a_daemon(held):
    _h, tmp = held
    r, w = os.pipe()
    runc = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    runc.connect(str(tmp / "s.sock"))  # no sysbox-fs connected: runc's exec goes on regardless
    runc.sendmsg([b'{"pid": 42}'], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", [r]))])
    runc.close()
    os.close(r)
    d = client(tmp)
    deadline = 50
    kept: list = []
    while not kept and deadline:  # the holder accepts it on its own time
        if d.sock is not None:
            d.sock.close()
        kept = d.connect()
        deadline -= 1
    assert kept and kept[0][0].startswith("seccomp/") and kept[0][2] == {"state": {"pid": 42}}
    os.write(w, b"x")
    assert os.read(kept[0][1], 1) == b"x"
    os.close(kept[0][1])
    os.close(w)
