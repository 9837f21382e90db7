"""sysbox-fs's own FUSE protocol code and its page-cache rules, without a kernel: requests are
built as the kernel lays them out, content comes from a fake node, time from a fake clock."""

from __future__ import annotations

import errno
import struct

import pytest

from sysbox.fs import fuse, nodes, wire
from sysbox.fs.session import Session


def request(opcode: int, body: bytes = b"", nodeid: int = 1, unique: int = 7) -> bytes:
    return wire.IN_HEADER.pack(wire.IN_HEADER.size + len(body), opcode, unique, nodeid, 0, 0, 42, 0, 0) + body


def answer(out: bytes) -> tuple[int, int, bytes]:
    size, err, unique = wire.OUT_HEADER.unpack_from(out)
    assert size == len(out)
    return err, unique, out[wire.OUT_HEADER.size:]


def init_body(minor: int = 41, flags: int = 0xFFFFFFFF) -> bytes:
    return wire.INIT_IN.pack(7, minor, 131072, flags) + b"\0" * 48


def test_init_never_agrees_to_atomic_o_trunc_or_writeback():
    payload, minor, flags = wire.init_reply(memoryview(init_body()))
    assert len(payload) == 64 and minor == 41
    major, ours, _ra, agreed = struct.unpack_from("<IIII", payload)
    assert (major, ours) == (7, wire.MINOR) and agreed == flags == wire.WANTED
    assert not agreed & (1 << 3) and not agreed & (1 << 16)  # ATOMIC_O_TRUNC, WRITEBACK_CACHE
    assert agreed & wire.AUTO_INVAL_DATA
    _p, _m, offered_less = wire.init_reply(memoryview(init_body(flags=wire.BIG_WRITES)))
    assert offered_less == wire.BIG_WRITES  # only what the kernel offered
    with pytest.raises(ValueError, match="protocol 8"):
        wire.init_reply(memoryview(struct.pack("<IIII", 8, 0, 0, 0) + b"\0" * 48))


def test_request_length_must_match():
    with pytest.raises(ValueError, match="says"):
        wire.Request(request(wire.GETATTR) + b"x")


def test_layouts_are_the_kernels():
    attr = wire.Attr(5, 0o100444, 10, 1, 2, 3_000_000_007, 0.01)
    assert len(attr.pack()) == 88
    assert len(wire.entry(attr, 1.0)) == 128
    out = wire.attr_out(attr)
    assert len(out) == 104 and struct.unpack_from("<QI", out) == (0, 10_000_000)
    ino, size, _blocks, _a, mtime = struct.unpack_from("<QQQQQ", attr.pack())
    assert (ino, size, mtime) == (5, 10, 3)
    ent = wire.dirent(9, 1, b"abc", 8)
    assert len(ent) == 32 and len(ent) % 8 == 0
    batch = struct.pack("<II", 2, 0) + struct.pack("<QQQQ", 4, 1, 6, 3)
    assert wire.forgets(wire.BATCH_FORGET, 0, memoryview(batch)) == [(4, 1), (6, 3)]
    assert wire.forgets(wire.FORGET, 8, memoryview(struct.pack("<Q", 2))) == [(8, 2)]


class Clock:
    def __init__(self) -> None:
        self.now = 100.0
        self.ns = 1_000_000_000

    def monotonic(self) -> float:
        return self.now

    def time_ns(self) -> int:
        self.ns += 1
        return self.ns


class Counter(nodes.File):
    """A node whose content the test decides."""

    def __init__(self) -> None:
        self.value = b"1\n"
        self.reads = 0
        self.written: list[bytes] = []

    def read(self, c):
        self.reads += 1
        return self.value

    def write(self, c, data):
        if not data.strip().isdigit():
            raise OSError(errno.EINVAL, "bad")
        self.written.append(data)
        self.value = data.strip() + b"\n"


@pytest.fixture
def clock(monkeypatch):
    c = Clock()
    monkeypatch.setattr(fuse, "time", c)
    return c


@pytest.fixture
def node(monkeypatch):
    n = Counter()
    monkeypatch.setitem(nodes.FILES, "proc/uptime", n)
    return n


def served(clock, container=None) -> fuse.SysboxFS:
    import types

    container = container or types.SimpleNamespace(persist=None)
    fs = fuse.SysboxFS(100000, 100000)
    fs.container = container  # type: ignore[assignment]
    return fs


def lookup(fs: fuse.SysboxFS, path: str) -> wire.Attr:
    ino = 1
    attr = None
    for part in path.split("/"):
        attr, _ = fs.lookup(ino, part)
        ino = attr.ino
    assert attr is not None
    return attr


def test_content_is_regenerated_only_past_its_bound_and_mtime_moves_only_with_it(clock, node):
    fs = served(clock)
    looked = lookup(fs, "proc/uptime")
    assert looked.timeout == 0.0 and node.reads == 0  # a lookup alone generates nothing
    first = fs.getattr(looked.ino)
    assert first.size == 2 and first.timeout == fuse.freshness("proc/uptime") == 0.01 and first.uid == 100000
    again = fs.getattr(first.ino)
    assert node.reads == 1 and again.mtime_ns == first.mtime_ns  # within the bound: the snapshot
    relooked = lookup(fs, "proc/uptime")
    assert node.reads == 1 and relooked.size == 2 and 0 < relooked.timeout <= 0.01  # the snapshot's
    clock.now += 0.02
    same = fs.getattr(first.ino)
    assert node.reads == 2 and same.mtime_ns == first.mtime_ns  # regenerated, unchanged: pages stay
    node.value = b"22\n"
    clock.now += 0.02
    changed = fs.getattr(first.ino)
    assert changed.mtime_ns > first.mtime_ns and changed.size == 3  # the kernel drops its pages
    assert fs.read(first.ino, 0, 4096) == b"22\n"  # what the size was measured on
    node.value = b"333\n"
    assert fs.read(first.ino, 0, 4096) == b"22\n"  # until the next GETATTR


def test_a_write_always_moves_mtime_even_when_it_fails(clock, node):
    fs = served(clock)
    attr = lookup(fs, "proc/uptime")
    assert fs.write(attr.ino, 0, b"5\n") == 2 and node.written == [b"5\n"]
    after = fs.getattr(attr.ino)
    assert after.mtime_ns > attr.mtime_ns and fs.read(attr.ino, 0, 10) == b"5\n"
    with pytest.raises(OSError) as e:
        fs.write(attr.ino, 0, b"abc")
    assert e.value.errno == errno.EINVAL
    assert fs.getattr(attr.ino).mtime_ns > after.mtime_ns
    with pytest.raises(OSError) as e:
        fs.write(attr.ino, 3, b"1")
    assert e.value.errno == errno.EINVAL  # one value per write, from the start


def test_truncation_keeps_the_true_size(clock, node):
    fs = served(clock)
    attr = lookup(fs, "proc/uptime")
    assert fs.setattr(attr.ino, wire.FATTR_SIZE).size == 2
    with pytest.raises(OSError) as e:
        fs.setattr(attr.ino, wire.FATTR_MODE)
    assert e.value.errno == errno.EPERM


def test_before_registration_nothing_is_cached_or_read(clock, node):
    fs = fuse.SysboxFS(100000, 100000)
    attr = lookup(fs, "proc/uptime")
    assert attr.timeout == 0.0 and node.reads == 0
    with pytest.raises(OSError) as e:
        fs.read(attr.ino, 0, 10)
    assert e.value.errno == errno.EACCES


def test_forget_drops_a_node_at_zero_lookups(clock, node):
    fs = served(clock)
    attr = lookup(fs, "proc/uptime")
    lookup(fs, "proc/uptime")
    fs.forget(attr.ino, 1)
    assert attr.ino in fs.nodes
    fs.forget(attr.ino, 1)
    assert attr.ino not in fs.nodes and "proc/uptime" not in fs.by_path
    with pytest.raises(OSError):
        fs.getattr(attr.ino)


def test_the_root_is_the_containers_roots_alone(clock, node):
    root = served(clock).getattr(1)
    assert root.mode & 0o777 == 0o700 and root.uid == 100000


def test_session_answers_every_request(clock, node):
    fs = served(clock)
    s = Session(fs, "t")

    def ask(opcode: int, body: bytes = b"", nodeid: int = 1) -> tuple[int, int, bytes] | None:
        out = s.handle(wire.Request(request(opcode, body, nodeid)))
        return None if out is None else answer(out)

    err, unique, payload = ask(wire.INIT, init_body())  # type: ignore[misc]
    assert err == 0 and unique == 7 and len(payload) == 64
    assert ask(wire.OPEN, struct.pack("<II", 0, 0))[0] == -errno.ENOSYS  # type: ignore[index]
    assert ask(wire.FLUSH, b"\0" * 24)[0] == -errno.ENOSYS  # type: ignore[index]
    assert ask(999)[0] == -errno.ENOSYS  # type: ignore[index]
    err, _, entry = ask(wire.LOOKUP, b"proc\0")  # type: ignore[misc]
    assert err == 0 and len(entry) == 128
    assert ask(wire.LOOKUP, b"nothing\0")[0] == -errno.ENOENT  # type: ignore[index]
    assert ask(wire.FORGET, struct.pack("<Q", 1), nodeid=2) is None
    assert ask(wire.GETATTR, b"\0" * 16, nodeid=12345)[0] == -errno.ENOENT  # type: ignore[index]

    def broken(req):
        raise RuntimeError("a bug")
    s.handlers[wire.STATFS] = broken
    assert ask(wire.STATFS)[0] == -errno.EIO  # type: ignore[index]  # contained to this request
