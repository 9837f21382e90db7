"""One FUSE connection's requests: decoded, answered by its SysboxFS, encoded (no I/O).

Every request gets an answer; an exception is that request's EIO, logged, never the daemon's.
sysbox.fs.server reads the requests and writes the answers.
"""

from __future__ import annotations

import errno
import logging
import struct

from sysbox.fs import wire
from sysbox.fs.fuse import SysboxFS

log = logging.getLogger("sysbox-fs")

class Session:
    """Opcodes without a handler (OPEN and FLUSH among them: the page-cache read path, see
    fuse.py) are answered ENOSYS, so the kernel stops sending them."""

    def __init__(self, fs: SysboxFS, name: str) -> None:
        self.fs, self.name = fs, name
        self.requests = 0
        self.handlers = {
            wire.LOOKUP: self._lookup, wire.GETATTR: self._getattr, wire.SETATTR: self._setattr,
            wire.READLINK: self._readlink, wire.READ: self._read, wire.WRITE: self._write,
            wire.STATFS: self._statfs, wire.OPENDIR: self._opendir, wire.READDIR: self._readdir,
            wire.RELEASEDIR: self._releasedir,
        }

    def slow(self, req: wire.Request) -> bool:
        """Would this request fork or wait (a write as the container's root, an id knob read
        in its namespaces)?  Those run on the server's pool, the rest in its loop."""
        if req.opcode == wire.WRITE:
            return True
        if req.opcode in (wire.GETATTR, wire.READ):
            node = self.fs.nodes.get(req.nodeid)
            return node is not None and self.fs.is_slow(node.path)
        return False

    def handle(self, req: wire.Request) -> bytes | None:
        """The reply to one request, or None for those that get none."""
        self.requests += 1
        op = req.opcode
        if op in wire.NO_REPLY:
            if op != wire.INTERRUPT:
                for ino, count in wire.forgets(op, req.nodeid, req.body):
                    self.fs.forget(ino, count)
            return None
        if op == wire.INIT:
            try:
                payload, minor, flags = wire.init_reply(req.body)
            except ValueError as e:
                log.error("%s: %s", self.name, e)
                return wire.error(req.unique, errno.EPROTO)
            log.debug("%s: FUSE 7.%d, flags %#x", self.name, minor, flags)
            return wire.reply(req.unique, payload)
        if op == wire.DESTROY:
            return wire.reply(req.unique)
        handler = self.handlers.get(op)
        if handler is None:
            return wire.error(req.unique, errno.ENOSYS)
        try:
            return wire.reply(req.unique, handler(req))
        except OSError as e:
            return wire.error(req.unique, e.errno or errno.EIO)
        except Exception:
            log.exception("%s: opcode %d failed", self.name, op)
            return wire.error(req.unique, errno.EIO)

    # -- decoding and encoding around SysboxFS ---------------------------------------------------
    def _lookup(self, req: wire.Request) -> bytes:
        name = bytes(req.body).rstrip(b"\0").decode("utf-8", "surrogateescape")
        attr, timeout = self.fs.lookup(req.nodeid, name)
        return wire.entry(attr, timeout)

    def _getattr(self, req: wire.Request) -> bytes:
        return wire.attr_out(self.fs.getattr(req.nodeid))

    def _setattr(self, req: wire.Request) -> bytes:
        valid = struct.unpack_from("<I", req.body)[0]
        return wire.attr_out(self.fs.setattr(req.nodeid, valid))

    def _readlink(self, req: wire.Request) -> bytes:
        return self.fs.readlink(req.nodeid)

    def _read(self, req: wire.Request) -> bytes:
        _fh, offset, size = wire.READ_IN.unpack_from(req.body)
        return self.fs.read(req.nodeid, offset, size)

    def _write(self, req: wire.Request) -> bytes:
        _fh, offset, size, _flags = wire.WRITE_IN.unpack_from(req.body)
        data = bytes(req.body[wire.WRITE_IN_SIZE:wire.WRITE_IN_SIZE + size])
        return wire.WRITE_OUT.pack(self.fs.write(req.nodeid, offset, data), 0)

    def _statfs(self, req: wire.Request) -> bytes:
        return wire.statfs_out()

    def _opendir(self, req: wire.Request) -> bytes:
        return wire.open_out(self.fs.opendir(req.nodeid), 0)

    def _readdir(self, req: wire.Request) -> bytes:
        fh, offset, size = wire.READ_IN.unpack_from(req.body)
        return self.fs.readdir(fh, offset, size, req.nodeid)

    def _releasedir(self, req: wire.Request) -> bytes:
        fh = struct.unpack_from("<Q", req.body)[0]
        self.fs.releasedir(fh)
        return b""
