"""One container's sysbox-fs tree: the nodes as FUSE inodes of that container's own connection.

Each container has a FUSE connection of its own (sysbox.fs.connections), so the container of
every request is the connection's, never guessed from the caller; no inode, page or cached
size is shared between containers.

Reads are served from the kernel's page cache.  `open` and `flush` are answered ENOSYS, so the
kernel stops sending them (it treats files as kept in cache); GETATTR reports a node's true
size, and an mtime that changes exactly when its content does; with FUSE_AUTO_INVAL_DATA a new
mtime drops the cached pages.  The attribute timeout is therefore each node's freshness bound
(FRESHNESS): an open+read+close costs no request at all while it holds, two after.
A write bumps the node's mtime, so the next read sees what the kernel would show at once.

Ownership is the kernel's view: emulated files belong to the container's root, mirrored host
files keep their real owner (host root: nobody inside, as in a raw procfs of a user
namespace), and the kernel itself applies the modes (default_permissions), capabilities of
the caller's user namespace included.
"""

from __future__ import annotations

import errno
import logging
import os
import stat
import time

from sysbox.fs import nodes, wire
from sysbox.fs.container import Container
from sysbox.fs.nodes.mirror import ID_KNOBS

log = logging.getLogger("sysbox-fs")

DIR_TIMEOUT = 1.0  # names and attributes of directories and of nodes whose shape never changes
# Freshness bounds, seconds: the longest a read may show content older than the source.
# Longest prefix wins.  0: generated for every read (the kernel asks each time).
FRESHNESS: dict[str, float] = {
    "proc/uptime": 0.01,
    "proc/loadavg": 0.1, "proc/meminfo": 0.1, "proc/stat": 0.1, "proc/diskstats": 0.1, "proc/swaps": 0.1,
    "proc/cpuinfo": 1.0, "sys/devices/system/cpu/online": 1.0,  # the cpuset and quota are re-read each 1 s
    "proc/sys": 0.1,
    "proc/sys/kernel/random/uuid": 0.0,  # a new one at every read
    "proc/sys/net": 0.0,  # the container's own network state, which it changes by other means too
    "sys": 0.1,
}
# Names below these may come and go with the container's namespaces (interfaces, ...).
VOLATILE_NAMES = ("proc/sys/net",)
MAX_CONTENT = 1 << 20
ROOT = 1  # FUSE_ROOT_ID
_READABLE = 0o444


def freshness(path: str) -> float:
    best, bound = -1, 0.0
    for prefix, seconds in FRESHNESS.items():
        if (path == prefix or path.startswith(prefix + "/")) and len(prefix) > best:
            best, bound = len(prefix), seconds
    return bound


def entry_timeout(path: str) -> float:
    for prefix in VOLATILE_NAMES:
        if path == prefix or path.startswith(prefix + "/"):
            return 0.0
    return DIR_TIMEOUT


class Node:
    """An inode the kernel knows: its path, lookup count, and content snapshot."""

    __slots__ = ("bound", "data", "failed", "ino", "lookups", "path", "taken", "version")

    def __init__(self, ino: int, path: str) -> None:
        self.ino, self.path, self.lookups = ino, path, 0
        self.bound = freshness(path)
        self.data: bytes | None = None  # content as of `taken` (monotonic s), whose size the kernel has
        self.failed = 0  # errno of the last generation, reported at READ
        self.taken = 0.0
        self.version = time.time_ns()  # reported as mtime

    def bump(self) -> None:
        self.version = max(time.time_ns(), self.version + 1)


class Handle:
    __slots__ = ("entries", "ino", "path")

    def __init__(self, path: str, entries: list[tuple[str, bool]], ino: int = 0) -> None:
        self.path, self.entries, self.ino = path, entries, ino


class SysboxFS:
    """The filesystem one connection serves; `container` is set once the container registers
    (until then, only runc's stat of bind sources comes, and nothing is cached)."""

    def __init__(self, uid: int, gid: int, inode_log: str | None = None, resume: bool = False) -> None:
        self.container: Container | None = None
        self.uid, self.gid = uid, gid  # the container's root, as host ids
        self.nodes: dict[int, Node] = {ROOT: Node(ROOT, "")}
        self.by_path: dict[str, int] = {"": ROOT}
        self.next_ino = ROOT + 1
        self.next_dirent = 1 << 40  # inode numbers for directory entries never looked up
        self.handles: dict[int, Handle] = {}
        self.next_fh = 1
        # Every inode number handed to the kernel is logged before the answer that carries it,
        # so a sysbox-fs that resumes this connection knows what the kernel's numbers mean.
        self.log_fd = -1
        if inode_log:
            if resume:
                self._load(inode_log)
                self.next_fh = time.time_ns()  # never one a previous sysbox-fs gave out
            flags = os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC | (0 if resume else os.O_TRUNC)
            self.log_fd = os.open(inode_log, flags, 0o600)
        self.dirs = _static_dirs()
        self.started_ns = time.time_ns()

    # -- the tree ------------------------------------------------------------------------------
    def _route(self, path: str) -> tuple[nodes.Subtree | None, str]:
        for root, sub in nodes.SUBTREES.items():
            if path == root or path.startswith(root + "/"):
                return sub, path[len(root) + 1:]
        return None, path

    def _stat(self, path: str) -> nodes.Stat:
        if path in nodes.FILES:
            return nodes.Stat(False, nodes.FILES[path].mode)
        sub, rel = self._route(path)
        if sub is not None:
            st = sub.stat(rel, self.container)
            if st is None:
                raise OSError(errno.ENOENT, path)
            return st
        if path in self.dirs:
            return nodes.Stat(True, 0o555)
        raise OSError(errno.ENOENT, path)

    def _node(self, ino: int) -> Node:
        node = self.nodes.get(ino)
        if node is None:
            raise OSError(errno.ENOENT, "stale inode")
        return node

    def _node_for(self, path: str) -> Node:
        ino = self.by_path.get(path)
        if ino is None:
            ino = self.next_ino
            self.next_ino += 1
            if self.log_fd >= 0:
                os.write(self.log_fd, f"{ino} {path}\n".encode())
            self.by_path[path] = ino
            self.nodes[ino] = Node(ino, path)
        return self.nodes[ino]

    def _load(self, inode_log: str) -> None:
        """The inodes a previous sysbox-fs gave the kernel on this connection.  Their lookup
        counts are unknown: they are kept for the connection's life."""
        try:
            with open(inode_log, "rb") as f:
                lines = f.read().decode(errors="surrogateescape").splitlines()
        except FileNotFoundError:
            return
        for line in lines:
            ino_s, _, path = line.partition(" ")
            if ino_s.startswith("-"):
                gone = self.nodes.pop(int(ino_s[1:]), None) if ino_s[1:].isdigit() else None
                if gone is not None:
                    self.by_path.pop(gone.path, None)
                continue
            if not ino_s.isdigit():
                continue  # a line cut short by the kill
            ino = int(ino_s)
            node = Node(ino, path)
            node.lookups = 1 << 40
            self.nodes[ino] = node
            self.by_path[path] = ino
            self.next_ino = max(self.next_ino, ino + 1)

    def close(self) -> None:
        if self.log_fd >= 0:
            os.close(self.log_fd)
            self.log_fd = -1

    def _readable_by_container(self, st: nodes.Stat) -> bool:
        if not st.mode & _READABLE:
            return False
        owned = st.uid is None or st.uid == self.uid
        return owned or bool(st.mode & 0o004)

    def _content(self, node: Node, st: nodes.Stat, force: bool = False) -> bytes | None:
        """The node's snapshot, regenerated when older than its bound (or forced)."""
        c = self.container
        if c is None:
            return None
        now = time.monotonic()
        if not force and node.data is not None and now - node.taken < node.bound:
            return node.data
        try:
            data = (self._generate(node.path, c))[:MAX_CONTENT]
            node.failed = 0
        except OSError as e:
            node.failed = e.errno or errno.EIO
            data = b""
        if data != node.data:
            node.bump()
        node.data, node.taken = data, now
        return data

    def _generate(self, path: str, c: Container) -> bytes:
        if path in nodes.FILES:
            return nodes.FILES[path].read(c)
        sub, rel = self._route(path)
        if sub is None:
            raise OSError(errno.EISDIR, "is a directory")
        return sub.read(rel, c)

    def _attr(self, node: Node, st: nodes.Stat, generate: bool = True) -> wire.Attr:
        """`generate`: False for LOOKUP, which reports the snapshot it has (or a placeholder
        the kernel asks again for at the first read): a lookup alone (stat, ls, a procfs
        mounted inside cloning the nodes) does not pay for the content."""
        owner = self.uid if st.uid is None else st.uid
        group = self.gid if st.gid is None else st.gid
        if st.is_link:
            return wire.Attr(node.ino, stat.S_IFLNK | 0o777, 0, owner, group, self.started_ns, DIR_TIMEOUT)
        if st.is_dir:
            return wire.Attr(node.ino, stat.S_IFDIR | st.mode, 0, owner, group, self.started_ns, DIR_TIMEOUT, 2)
        mode = stat.S_IFREG | st.mode
        if self.container is None or not self._readable_by_container(st):
            # nothing to cache: the size is a placeholder (a short READ corrects it)
            node.data = None
            return wire.Attr(node.ino, mode, st.size, owner, group, node.version, 0.0)
        if not generate:
            left = node.bound - (time.monotonic() - node.taken) if node.data is not None else 0.0
            size = len(node.data) if node.data is not None else st.size
            return wire.Attr(node.ino, mode, size, owner, group, node.version, max(left, 0.0))
        data = self._content(node, st)
        assert data is not None
        return wire.Attr(node.ino, mode, len(data), owner, group, node.version, node.bound)

    def is_slow(self, path: str) -> bool:
        """Reads that fork a helper (an id knob, read as the container's root)."""
        return path.startswith("proc/sys/") and path[len("proc/sys/"):] in ID_KNOBS

    # -- operations, as the session calls them -------------------------------------------------
    def lookup(self, parent_ino: int, name: str) -> tuple[wire.Attr, float]:
        parent = self._node(parent_ino).path
        if name in (".", "..") or "/" in name:
            raise OSError(errno.ENOENT, name)
        path = f"{parent}/{name}" if parent else name
        st = self._stat(path)
        node = self._node_for(path)
        attr = self._attr(node, st, generate=False)
        node.lookups += 1
        return attr, entry_timeout(path)

    def forget(self, ino: int, count: int) -> None:
        node = self.nodes.get(ino)
        if node is None or ino == ROOT:
            return
        node.lookups -= count
        if node.lookups <= 0:
            del self.nodes[ino]
            self.by_path.pop(node.path, None)
            if self.log_fd >= 0:
                os.write(self.log_fd, f"-{ino}\n".encode())

    def getattr(self, ino: int) -> wire.Attr:
        node = self._node(ino)
        if ino == ROOT:
            # only the container's root (and host root) may enter: a host user may not read
            # another's container through the host mount
            return wire.Attr(ino, stat.S_IFDIR | 0o700, 0, self.uid, self.gid, self.started_ns, DIR_TIMEOUT, 2)
        return self._attr(node, self._stat(node.path))

    def setattr(self, ino: int, valid: int) -> wire.Attr:
        # `echo 1 > knob` truncates first (O_TRUNC through SETATTR): a no-op, answered with the
        # true size so nobody's cached size drops to 0; the write carries the value.
        if valid & (wire.FATTR_MODE | wire.FATTR_UID | wire.FATTR_GID):
            raise OSError(errno.EPERM, "attributes are fixed")
        return self.getattr(ino)

    def readlink(self, ino: int) -> bytes:
        sub, rel = self._route(self._node(ino).path)
        if sub is None:
            raise OSError(errno.EINVAL, "not a link")
        return sub.readlink(rel, self.container).encode()

    def read(self, ino: int, offset: int, size: int) -> bytes:
        node = self._node(ino)
        if self.container is None:
            raise OSError(errno.EACCES, "no container yet")
        if node.data is None:
            st = self._stat(node.path)
            if st.is_dir:
                raise OSError(errno.EISDIR, node.path)
            self._content(node, st, force=True)
        if node.failed:
            raise OSError(node.failed, node.path)
        assert node.data is not None
        return node.data[offset:offset + size]

    def write(self, ino: int, offset: int, data: bytes) -> int:
        node = self._node(ino)
        c = self.container
        if c is None:
            raise OSError(errno.EACCES, "no container yet")
        if offset != 0:
            raise OSError(errno.EINVAL, "sysctl semantics: one value per write, from the start")
        try:
            if node.path in nodes.FILES:
                nodes.FILES[node.path].write(c, data)
            else:
                sub, rel = self._route(node.path)
                if sub is None:
                    raise OSError(errno.EISDIR, node.path)
                sub.write(rel, c, data)
            if c.persist is not None:
                c.persist()
        finally:
            # whatever happened, the page the kernel wrote into is not the node's content
            node.data = None
            node.bump()
        return len(data)

    def opendir(self, ino: int) -> int:
        path = self._node(ino).path
        sub, rel = self._route(path)
        if sub is not None:
            entries = sub.listdir(rel, self.container)
        else:
            prefix = f"{path}/" if path else ""
            names: dict[str, bool] = {}
            for p in list(nodes.FILES) + list(nodes.SUBTREES) + list(self.dirs):
                if p.startswith(prefix) and p != path:
                    head, _, tail = p[len(prefix):].partition("/")
                    names[head] = names.get(head, False) or bool(tail) or p in self.dirs or p in nodes.SUBTREES
            entries = sorted(names.items())
        fh = self.next_fh
        self.next_fh += 1
        self.handles[fh] = Handle(path, entries, ino)
        return fh

    def readdir(self, fh: int, offset: int, size: int, ino: int = 0) -> bytes:
        h = self.handles.get(fh)
        if ino and (h is None or h.ino != ino):
            # opened under a previous sysbox-fs (a restart in the middle of a listing)
            self.handles[fh] = self.handles.pop(self.opendir(ino))
            h = self.handles[fh]
        if h is None:
            raise OSError(errno.EBADF, "no such directory handle")
        out: list[bytes] = []
        used = 0
        for i in range(offset, len(h.entries)):
            name, is_dir = h.entries[i]
            path = f"{h.path}/{name}" if h.path else name
            known = self.by_path.get(path)
            if known is None:
                known = self.next_dirent
                self.next_dirent += 1
            ent = wire.dirent(known, i + 1, name.encode(), 4 if is_dir else 8)  # DT_DIR, DT_REG
            if used + len(ent) > size:
                break
            out.append(ent)
            used += len(ent)
        return b"".join(out)

    def releasedir(self, fh: int) -> None:
        self.handles.pop(fh, None)


def _static_dirs() -> set[str]:
    dirs = {""}
    for path in list(nodes.FILES) + list(nodes.SUBTREES):
        parts = path.split("/")
        for i in range(1, len(parts)):
            dirs.add("/".join(parts[:i]))
    return dirs
