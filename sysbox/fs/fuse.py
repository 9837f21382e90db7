"""The FUSE filesystem: one mount for all containers, answering each request for its caller.

pyfuse3 serves a single session per process, so sysbox-fs keeps one mount and identifies the
container of every lookup/getattr/open from the request's pid (sysbox.fs.registry).  Content is
generated at open() and served from the handle with direct_io, so every open sees fresh values
and no container's data lands in a shared page cache.

Ownership: files are reported as owned by host root, whose id no container maps, so inside
they show as nobody (a known difference from Sysbox, which runs one mount per container).
Outside /proc/sys attributes are identical for every caller and the kernel may cache them,
which is what keeps a read near lxcfs's cost; below /proc/sys every container has inodes of
its own (per_container), so one container's truncating write never shows in another's reads.

Permissions are checked in open() as the kernel checks a file's mode: the owner's, group's or
others' bits for the caller's (host) uid and gid against the node's owner - the container's
root for emulated files, the real owner for mirrored ones (host root for a host knob, so a
0600 host file is unreadable from any container, as through a raw procfs).
"""

from __future__ import annotations

import errno
import logging
import os
import stat
import time

import pyfuse3
import trio

from sysbox.fs import nodes
from sysbox.fs.container import Container
from sysbox.fs.registry import Registry

log = logging.getLogger("sysbox-fs")
TIMEOUT = 1.0  # entry/attr cache seconds for nodes whose shape never differs between containers
NS_TIMEOUT = 0.0  # /proc/sys/net: each network namespace has its own interfaces and tables


class Handle:
    __slots__ = ("container", "data", "entries", "inode", "path", "writable")

    def __init__(self, path: str, container: Container | None, data: bytes = b"",
                 entries: list[tuple[str, bool]] | None = None, writable: bool = False, inode: int = 0) -> None:
        self.path, self.container, self.data, self.entries, self.writable = path, container, data, entries, writable
        self.inode = inode


def per_container(path: str) -> bool:
    """Paths below /proc/sys get an inode per container: a truncating write (`echo v > knob`)
    changes the kernel's cached size of the inode it writes, and with one inode for everyone a
    reader in another container would see that size (a truncated or NUL-padded value).  The
    /proc/sys mount root itself is shared (sysbox-runc binds it); its children are looked up
    for each caller (entry timeout 0), so every container resolves to its own inodes."""
    return path.startswith("proc/sys/")


def _fail(err: int) -> pyfuse3.FUSEError:
    return pyfuse3.FUSEError(err)


def allowed(st: nodes.Stat, c: Container, uid: int, gid: int, read: bool, write: bool) -> bool:
    """The kernel's mode check (without supplementary groups or capabilities, which can only
    widen it for a container's own files): the caller's class picks the bits that apply."""
    owner = c.uid if st.uid is None else st.uid
    group = c.gid if st.gid is None else st.gid
    shift = 6 if uid == owner else 3 if gid == group else 0
    need = (4 if read else 0) | (2 if write else 0)
    return (st.mode >> shift) & need == need


class SysboxFS(pyfuse3.Operations):
    enable_writeback_cache = False

    def __init__(self, registry: Registry) -> None:
        super().__init__()
        self.registry = registry
        self.paths: dict[int, str] = {pyfuse3.ROOT_INODE: ""}
        # (owner, path) -> inode; owner: the container's user namespace inode for per_container
        # paths, else 0
        self.inodes: dict[tuple[int, str], int] = {(0, ""): pyfuse3.ROOT_INODE}
        self.owners: dict[int, int] = {}  # inode -> owner, for per-container inodes
        self.next_ino = pyfuse3.ROOT_INODE + 1
        self.handles: dict[int, Handle] = {}
        self.next_fh = 1
        self.dirs = self._static_dirs()
        self.started_ns = time.time_ns()

    # -- the tree ------------------------------------------------------------------------------
    @staticmethod
    def _static_dirs() -> set[str]:
        dirs = {""}
        for path in list(nodes.FILES) + list(nodes.SUBTREES):
            parts = path.split("/")
            for i in range(1, len(parts)):
                dirs.add("/".join(parts[:i]))
        return dirs

    def _route(self, path: str) -> tuple[nodes.Subtree | None, str]:
        for root, sub in nodes.SUBTREES.items():
            if path == root or path.startswith(root + "/"):
                return sub, path[len(root) + 1:]
        return None, path

    async def _stat(self, path: str, c: Container | None) -> nodes.Stat:
        if path in nodes.FILES:
            return nodes.Stat(False, nodes.FILES[path].mode)
        sub, rel = self._route(path)
        if sub is not None:
            try:
                st = await sub.stat(rel, c)
            except OSError as e:
                raise _fail(e.errno or errno.EIO) from None
            if st is None:
                raise _fail(errno.ENOENT)
            return st
        if path in self.dirs:
            return nodes.Stat(True, 0o555)
        raise _fail(errno.ENOENT)

    def _inode(self, path: str, c: Container | None) -> int:
        owner = c.userns if c is not None and per_container(path) else 0
        ino = self.inodes.get((owner, path))
        if ino is None:
            ino = self.next_ino
            self.next_ino += 1
            self.inodes[(owner, path)] = ino
            self.paths[ino] = path
            if owner:
                self.owners[ino] = owner
        return ino

    def forget_owner(self, owner: int) -> int:
        """Drop the per-container inodes of a container that is gone; returns how many."""
        gone = [ino for ino, o in self.owners.items() if o == owner]
        for ino in gone:
            del self.inodes[(owner, self.paths.pop(ino))]
            del self.owners[ino]
        return len(gone)

    def _attrs(self, path: str, st: nodes.Stat, c: Container | None) -> pyfuse3.EntryAttributes:
        a = pyfuse3.EntryAttributes()
        a.st_ino = self._inode(path, c)
        if st.is_link:
            a.st_mode = stat.S_IFLNK | 0o777
        else:
            a.st_mode = (stat.S_IFDIR if st.is_dir else stat.S_IFREG) | st.mode
        a.st_nlink = 2 if st.is_dir else 1
        a.st_uid = a.st_gid = 0
        a.st_size = 0 if st.is_dir else st.size
        a.st_blksize = 4096
        a.st_atime_ns = a.st_mtime_ns = a.st_ctime_ns = self.started_ns
        timeout = NS_TIMEOUT if path == "proc/sys/net" or path.startswith("proc/sys/net/") else TIMEOUT
        a.attr_timeout = timeout
        a.entry_timeout = 0.0 if per_container(path) else timeout
        return a

    def _path(self, inode: int) -> str:
        try:
            return self.paths[inode]
        except KeyError:
            raise _fail(errno.ENOENT) from None

    # -- operations ----------------------------------------------------------------------------
    async def lookup(self, parent_inode, name, ctx):
        parent = self._path(parent_inode)
        name = os.fsdecode(name)
        if name in (".", ".."):
            raise _fail(errno.ENOENT)
        path = f"{parent}/{name}" if parent else name
        c = self.registry.caller(ctx.pid)
        return self._attrs(path, await self._stat(path, c), c)

    async def getattr(self, inode, ctx):
        path = self._path(inode)
        c = self.registry.caller(ctx.pid)
        return self._attrs(path, await self._stat(path, c), c)

    async def setattr(self, inode, attr, fields, fh, ctx):
        # `echo 1 > knob` opens with O_TRUNC: the truncate is a no-op, the write carries the value
        if fields.update_mode or fields.update_uid or fields.update_gid:
            raise _fail(errno.EPERM)
        return await self.getattr(inode, ctx)

    async def readlink(self, inode, ctx):
        sub, rel = self._route(self._path(inode))
        if sub is None:
            raise _fail(errno.EINVAL)
        try:
            return os.fsencode(sub.readlink(rel, self.registry.caller(ctx.pid)))
        except OSError as e:
            raise _fail(e.errno or errno.EINVAL) from None

    def _new_handle(self, h: Handle) -> int:
        fh = self.next_fh
        self.next_fh += 1
        self.handles[fh] = h
        return fh

    async def opendir(self, inode, ctx):
        path = self._path(inode)
        c = self.registry.caller(ctx.pid)
        sub, rel = self._route(path)
        if sub is not None:
            try:
                entries = await sub.listdir(rel, c)
            except OSError as e:
                raise _fail(e.errno or errno.EIO) from None
        else:
            prefix = f"{path}/" if path else ""
            names: dict[str, bool] = {}
            for p in list(nodes.FILES) + list(nodes.SUBTREES) + list(self.dirs):
                if p.startswith(prefix) and p != path:
                    head, _, tail = p[len(prefix):].partition("/")
                    names[head] = names.get(head, False) or bool(tail) or p in self.dirs or p in nodes.SUBTREES
            entries = sorted(names.items())
        return self._new_handle(Handle(path, c, entries=entries))

    async def readdir(self, fh, start_id, token):
        h = self.handles[fh]
        assert h.entries is not None
        for i in range(start_id, len(h.entries)):
            name, is_dir = h.entries[i]
            path = f"{h.path}/{name}" if h.path else name
            attrs = self._attrs(path, nodes.Stat(is_dir, 0o555 if is_dir else 0o444), h.container)
            if not pyfuse3.readdir_reply(token, os.fsencode(name), attrs, i + 1):
                return

    async def releasedir(self, fh):
        self.handles.pop(fh, None)

    async def open(self, inode, flags, ctx):
        path = self._path(inode)
        c = self.registry.caller(ctx.pid)
        if c is None:
            raise _fail(errno.EACCES)  # not a registered container: nothing to show
        accmode = flags & os.O_ACCMODE
        want_write = accmode in (os.O_WRONLY, os.O_RDWR)
        if not allowed(await self._stat(path, c), c, ctx.uid, ctx.gid, accmode != os.O_WRONLY, want_write):
            raise _fail(errno.EACCES)
        data = b""
        if accmode != os.O_WRONLY:
            data = await self._read(path, c)
        fh = self._new_handle(Handle(path, c, data=data, writable=want_write, inode=inode))
        return pyfuse3.FileInfo(fh=fh, direct_io=True, keep_cache=False)

    async def _read(self, path: str, c: Container) -> bytes:
        try:
            if path in nodes.FILES:
                return nodes.FILES[path].read(c)
            sub, rel = self._route(path)
            if sub is None:
                raise OSError(errno.EISDIR, "is a directory")
            return await sub.read(rel, c)
        except OSError as e:
            raise _fail(e.errno or errno.EIO) from None

    async def read(self, fh, off, size):
        return self.handles[fh].data[off:off + size]

    async def write(self, fh, off, buf):
        h = self.handles[fh]
        if not h.writable or h.container is None:
            raise _fail(errno.EBADF)
        if off != 0:
            raise _fail(errno.EINVAL)  # sysctl semantics: one value per write, from the start
        try:
            if h.path in nodes.FILES:
                nodes.FILES[h.path].write(h.container, bytes(buf))
            else:
                sub, rel = self._route(h.path)
                assert sub is not None
                await sub.write(rel, h.container, bytes(buf))
        except OSError as e:
            raise _fail(e.errno or errno.EIO) from None
        return len(buf)

    async def flush(self, fh):
        h = self.handles.get(fh)
        if h is not None and h.writable:
            # The truncating open (`echo 1 > knob`) set the kernel's cached size to 0, and reads
            # stop at the cached size even with direct_io, without asking us: the next reader
            # would see an empty file.  Storing one byte at the end of the nominal size extends it
            # again; dropping the page afterwards keeps nothing stale (reads are direct anyway).
            # Done in flush, which close() waits for; release arrives too late.
            # In a worker thread: notify_store writes into the page cache and waits for its page
            # lock, which another reader of this file may hold while it waits for *us* - called
            # from this (the only request-serving) thread it deadlocked the daemon under load.
            ino = h.inode

            def restore() -> None:
                pyfuse3.notify_store(ino, nodes.Stat(False, 0).size - 1, b"\n")
                pyfuse3.invalidate_inode(ino, attr_only=False)

            try:
                await trio.to_thread.run_sync(restore)
            except OSError as e:
                log.warning("could not restore the size of %s: %s", h.path, e)

    async def release(self, fh):
        self.handles.pop(fh, None)

    async def statfs(self, ctx):
        s = pyfuse3.StatvfsData()
        s.f_bsize = s.f_frsize = 4096
        s.f_namemax = 255
        return s
