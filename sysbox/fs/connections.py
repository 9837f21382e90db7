"""The FUSE connection of each container, mounted at <base>/<id>.

sysbox-runc asks for one (`prepare`) before `runc create`, so the spec can bind its nodes;
`register` then gives it the container.  Unregistering unmounts it and closes its fd, which
ends the connection (a bind still held somewhere reads ENOTCONN from then on).  The requests
are served by sysbox.fs.server.
"""

from __future__ import annotations

import logging
import os

from sysbox.fs.fuse import SysboxFS
from sysbox.fs.server import Server
from sysbox.fs.session import Session
from sysbox.linux import fusedev

log = logging.getLogger("sysbox-fs")


class Connection:
    __slots__ = ("fd", "fs", "path", "session")

    def __init__(self, path: str, fd: int, fs: SysboxFS, session: Session) -> None:
        self.path, self.fd, self.fs, self.session = path, fd, fs, session


class Connections:
    def __init__(self, base: str, server: Server) -> None:
        self.base = base
        self.server = server
        self.by_id: dict[str, Connection] = {}

    def path(self, cid: str) -> str:
        if "/" in cid or cid in ("", ".", ".."):
            raise ValueError(f"container id {cid!r}")
        return os.path.join(self.base, cid)

    def sweep(self) -> int:
        """Unmount what a previous sysbox-fs left under the base (dead connections: ENOTCONN)."""
        stale = fusedev.mounted_under(self.base)
        for point in sorted(stale, key=len, reverse=True):
            fusedev.unmount(point)
        for name in os.listdir(self.base) if os.path.isdir(self.base) else []:
            try:
                os.rmdir(os.path.join(self.base, name))
            except OSError:
                pass
        return len(stale)

    def open(self, cid: str, uid: int, gid: int) -> Connection:
        """A new connection for `cid` (replacing one it had), serving until closed."""
        if cid in self.by_id:
            self.close(cid)
        path = self.path(cid)
        os.makedirs(path, mode=0o755, exist_ok=True)
        fusedev.unmount(path)
        fd = fusedev.mount(path, 0, 0)
        fs = SysboxFS(uid, gid)
        conn = Connection(path, fd, fs, Session(fs, cid))
        self.by_id[cid] = conn
        self.server.add(fd, conn.session)
        return conn

    def close(self, cid: str) -> bool:
        conn = self.by_id.pop(cid, None)
        if conn is None:
            return False
        try:
            fusedev.unmount(conn.path)
            os.rmdir(conn.path)
        except OSError as e:
            log.warning("could not remove %s: %s", conn.path, e)
        self.server.remove(conn.fd)  # its fd closed, which ends the connection
        return True

    def close_all(self) -> None:
        for cid in list(self.by_id):
            self.close(cid)
