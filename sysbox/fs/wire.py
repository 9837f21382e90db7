"""The FUSE protocol as bytes: request headers in, replies out (no I/O; unit-tested).

sysbox-fs speaks the protocol itself instead of going through libfuse: it needs one connection
per container, INIT flags libfuse fixes (no FUSE_ATOMIC_O_TRUNC: an O_TRUNC open must never
set a cached size of 0), and, for restarts, control of the session state.  Only what sysbox-fs
serves is here; see include/uapi/linux/fuse.h for the layouts.
"""

from __future__ import annotations

import struct

MAJOR, MINOR = 7, 31  # what this module implements (the kernel talks down to it)

# opcodes
LOOKUP, FORGET, GETATTR, SETATTR, READLINK = 1, 2, 3, 4, 5
OPEN, READ, WRITE, STATFS, RELEASE = 14, 15, 16, 17, 18
FLUSH, INIT, OPENDIR, READDIR, RELEASEDIR = 25, 26, 27, 28, 29
INTERRUPT, DESTROY, BATCH_FORGET = 36, 38, 42
NO_REPLY = frozenset({FORGET, BATCH_FORGET, INTERRUPT})

# INIT flags
ASYNC_READ = 1 << 0
BIG_WRITES = 1 << 5
AUTO_INVAL_DATA = 1 << 12
PARALLEL_DIROPS = 1 << 18
MAX_PAGES = 1 << 22
# What we ask for, when the kernel offers it.  Not FUSE_ATOMIC_O_TRUNC: without it the kernel
# truncates through SETATTR and takes the size we answer.  AUTO_INVAL_DATA: a new mtime at
# GETATTR drops the cached pages, which is how a node's content is refreshed.
WANTED = ASYNC_READ | BIG_WRITES | AUTO_INVAL_DATA | PARALLEL_DIROPS | MAX_PAGES

# SETATTR valid bits
FATTR_MODE, FATTR_UID, FATTR_GID, FATTR_SIZE = 1 << 0, 1 << 1, 1 << 2, 1 << 3

FOPEN_DIRECT_IO, FOPEN_KEEP_CACHE = 1 << 0, 1 << 1

IN_HEADER = struct.Struct("<IIQQIIIHH")   # len opcode unique nodeid uid gid pid total_extlen pad
OUT_HEADER = struct.Struct("<IiQ")        # len error unique
ATTR = struct.Struct("<QQQQQQIIIIIIIIII")  # fuse_attr, 88 bytes
ENTRY = struct.Struct("<QQQQII")          # nodeid generation entry_valid attr_valid (+nsec)
ATTR_OUT = struct.Struct("<QII")          # attr_valid attr_valid_nsec dummy
INIT_IN = struct.Struct("<IIII")          # major minor max_readahead flags
INIT_OUT = struct.Struct("<IIIIHHIIHHI28x")  # ... flags2, unused[7]
READ_IN = struct.Struct("<QQI")           # fh offset size
WRITE_IN = struct.Struct("<QQII")         # fh offset size write_flags (+lock_owner flags padding)
WRITE_IN_SIZE = 40
SETATTR_IN = struct.Struct("<IIQQQQQQIIIIIIII")
OPEN_OUT = struct.Struct("<QII")
WRITE_OUT = struct.Struct("<II")
FORGET_ONE = struct.Struct("<QQ")
DIRENT = struct.Struct("<QQII")
KSTATFS = struct.Struct("<QQQQQIIII24x")

MAX_WRITE = 128 * 1024
BUFSIZE = MAX_WRITE + 4096  # the kernel refuses a read buffer smaller than one write


class Request:
    __slots__ = ("body", "gid", "nodeid", "opcode", "pid", "uid", "unique")

    def __init__(self, buf: bytes) -> None:
        size, self.opcode, self.unique, self.nodeid, self.uid, self.gid, self.pid, extlen, _ = \
            IN_HEADER.unpack_from(buf)
        if size != len(buf) or size < IN_HEADER.size:
            raise ValueError(f"request of {len(buf)} bytes says {size}")
        self.body = memoryview(buf)[IN_HEADER.size:size - extlen * 8]


def reply(unique: int, payload: bytes = b"") -> bytes:
    return OUT_HEADER.pack(OUT_HEADER.size + len(payload), 0, unique) + payload


def error(unique: int, errno_: int) -> bytes:
    return OUT_HEADER.pack(OUT_HEADER.size, -errno_, unique)


def _split(seconds: float) -> tuple[int, int]:
    whole = int(seconds)
    return whole, int((seconds - whole) * 1e9)


class Attr:
    """What GETATTR and LOOKUP report of a node."""

    __slots__ = ("gid", "ino", "mode", "mtime_ns", "nlink", "size", "timeout", "uid")

    def __init__(self, ino: int, mode: int, size: int, uid: int, gid: int, mtime_ns: int, timeout: float,
                 nlink: int = 1) -> None:
        self.ino, self.mode, self.size, self.uid, self.gid = ino, mode, size, uid, gid
        self.mtime_ns, self.timeout, self.nlink = mtime_ns, timeout, nlink

    def pack(self) -> bytes:
        sec, nsec = divmod(self.mtime_ns, 1_000_000_000)
        return ATTR.pack(self.ino, self.size, (self.size + 511) // 512, sec, sec, sec, nsec, nsec, nsec,
                         self.mode, self.nlink, self.uid, self.gid, 0, 4096, 0)


def entry(attr: Attr, entry_timeout: float) -> bytes:
    ev, evn = _split(entry_timeout)
    av, avn = _split(attr.timeout)
    return ENTRY.pack(attr.ino, 0, ev, av, evn, avn) + attr.pack()


def attr_out(attr: Attr) -> bytes:
    av, avn = _split(attr.timeout)
    return ATTR_OUT.pack(av, avn, 0) + attr.pack()


def init_reply(body: memoryview) -> tuple[bytes, int, int]:
    """(reply payload, kernel minor, flags agreed) for the kernel's INIT."""
    major, minor, readahead, offered = INIT_IN.unpack_from(body)
    if major != MAJOR:
        raise ValueError(f"FUSE protocol {major}.{minor}: only {MAJOR}.x is spoken")
    flags = offered & WANTED
    payload = INIT_OUT.pack(MAJOR, min(minor, MINOR), readahead, flags, 16, 12, MAX_WRITE, 1,
                            MAX_WRITE // 4096, 0, 0)
    return payload, minor, flags


def open_out(fh: int, flags: int) -> bytes:
    return OPEN_OUT.pack(fh, flags, 0)


def dirent(ino: int, offset: int, name: bytes, dtype: int) -> bytes:
    head = DIRENT.pack(ino, offset, len(name), dtype) + name
    return head + b"\0" * (-len(head) % 8)


def statfs_out() -> bytes:
    return KSTATFS.pack(0, 0, 0, 0, 0, 4096, 255, 4096, 0)


def forgets(opcode: int, nodeid: int, body: memoryview) -> list[tuple[int, int]]:
    """(nodeid, nlookup) pairs of a FORGET or BATCH_FORGET."""
    if opcode == FORGET:
        return [(nodeid, struct.unpack_from("<Q", body)[0])]
    count = struct.unpack_from("<I", body)[0]
    return [FORGET_ONE.unpack_from(body, 8 + 16 * i) for i in range(min(count, (len(body) - 8) // 16))]
