"""The FUSE connection of each container, mounted at <base>/<id>.

sysbox-runc asks for one (`prepare`) before `runc create`, so the spec can bind its nodes;
`register` then gives it the container.  Unregistering unmounts it and closes its fd, which
ends the connection (a bind still held somewhere reads ENOTCONN from then on).  The requests
are served by sysbox.fs.server.
"""

from __future__ import annotations

import logging
import os

from sysbox.fs.container import Container
from sysbox.fs.fuse import SysboxFS
from sysbox.fs.handover import HolderClient
from sysbox.fs.server import Server
from sysbox.fs.session import Session
from sysbox.linux import fusedev
from sysbox.linux.tree import detach_all, mounts_under

log = logging.getLogger("sysbox-fs")


def _held(cid: str) -> str:
    """The holder's name for a container's connection."""
    return f"fuse/{cid}"


class Connection:
    __slots__ = ("fd", "fs", "path", "session")

    def __init__(self, path: str, fd: int, fs: SysboxFS, session: Session) -> None:
        self.path, self.fd, self.fs, self.session = path, fd, fs, session


class Connections:
    def __init__(self, base: str, server: Server, state_dir: str | None = None,
                 holder: HolderClient | None = None) -> None:
        self.base = base
        self.server = server
        self.holder = holder
        self.inode_dir = os.path.join(state_dir, "inodes") if state_dir else None
        self.by_id: dict[str, Connection] = {}

    def _inode_log(self, cid: str) -> str | None:
        if not self.inode_dir:
            return None
        os.makedirs(self.inode_dir, mode=0o700, exist_ok=True)
        return os.path.join(self.inode_dir, cid)

    def path(self, cid: str) -> str:
        if "/" in cid or cid in ("", ".", ".."):
            raise ValueError(f"container id {cid!r}")
        return os.path.join(self.base, cid)

    def sweep(self, keep: frozenset[str] = frozenset()) -> int:
        """Unmount what a previous sysbox-fs left under the base (dead connections: ENOTCONN),
        but for the connections of `keep` (ids the holder kept alive)."""
        kept = {self.path(cid) for cid in keep}
        stale = [p for p in mounts_under(self.base) if p not in kept]  # only sysbox-fs mounts here
        for point in sorted(set(stale), key=len, reverse=True):
            detach_all(point)
        for name in os.listdir(self.base) if os.path.isdir(self.base) else []:
            if name in keep:
                continue
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
        detach_all(path)
        fd = fusedev.mount(path, 0, 0)
        fs = SysboxFS(uid, gid, self._inode_log(cid))
        conn = Connection(path, fd, fs, Session(fs, cid))
        self.by_id[cid] = conn
        if self.holder is not None:
            self.holder.keep(_held(cid), fd, {"id": cid, "uid": uid, "gid": gid})
        self.server.add(fd, conn.session)
        return conn

    def resume(self, cid: str, fd: int, uid: int, gid: int, container: Container) -> Connection | None:
        """Serve again a connection a previous sysbox-fs left with the holder: same mount,
        same inode numbers (from its log), and the requests it had read but not answered sent
        again by the kernel (FUSE_NOTIFY_RESEND; the connection is not served yet, so none is
        ours).  None if the connection is dead (aborted by
        the watchdog): the caller makes a new one."""
        if not fusedev.resend(fd):
            self.discard(cid, fd)
            return None
        fs = SysboxFS(uid, gid, self._inode_log(cid), resume=True)
        fs.container = container
        conn = Connection(self.path(cid), fd, fs, Session(fs, cid))
        self.by_id[cid] = conn
        if self.holder is not None:
            self.holder.adopted(_held(cid), fd, {"id": cid, "uid": uid, "gid": gid})
        self.server.add(fd, conn.session)
        return conn

    def close(self, cid: str) -> bool:
        conn = self.by_id.pop(cid, None)
        if conn is None:
            return False
        self.server.remove(conn.fd)  # its fd closed, which ends the connection
        conn.fs.close()
        self._remove(cid)
        return True

    def discard(self, cid: str, fd: int) -> None:
        """A kept connection nobody will serve (its container is gone, or it was aborted)."""
        os.close(fd)
        self._remove(cid)

    def _remove(self, cid: str) -> None:
        """What a connection leaves: the holder's copy, the mount, the inode log."""
        if self.holder is not None:
            self.holder.drop(_held(cid))
        path = self.path(cid)
        try:
            detach_all(path)
            os.rmdir(path)
        except OSError as e:
            log.warning("could not remove %s: %s", path, e)
        if self.inode_dir:
            try:
                os.unlink(os.path.join(self.inode_dir, cid))
            except FileNotFoundError:
                pass

    def release_all(self) -> None:
        """Stop serving without ending anything: the holder keeps the connections for the
        next sysbox-fs (a clean stop before an upgrade)."""
        for conn in self.by_id.values():
            self.server.remove(conn.fd)
            conn.fs.close()
        self.by_id.clear()

    def close_all(self) -> None:
        for cid in list(self.by_id):
            self.close(cid)
