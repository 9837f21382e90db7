"""A directory of the host (/proc/sys, /sys/kernel, ...) shown to containers, with some entries
emulated per container, some hidden, and reads/writes of the rest done in the caller's
namespaces where the kernel keys them by namespace (net, ipc, uts).

Permissions are the kernel's: a host file is owned by host root, so container processes get
its "other" bits (a 0600 knob reads EACCES, as through a raw procfs); a file of a namespace
the container owns, or an emulated one, is owned by the container's root.  Writes to a real
knob are made by a forked child that has joined the container's namespaces and become root of
its user namespace, so the kernel judges the write as the container's (a namespace the host
owns refuses it) and reads ids in the container's id space (net.ipv4.ping_group_range)."""

from __future__ import annotations

import errno
import os
import stat as st_
from collections.abc import Callable
from typing import ClassVar, TypeVar

from sysbox.fs.container import Container
from sysbox.fs.nodes import Stat, Subtree
from sysbox.linux import ns
from sysbox.linux import syscalls as sc

T = TypeVar("T")
# Knobs whose values are ids, shown and parsed in the reader's user namespace by the kernel.
ID_KNOBS = frozenset({"net/ipv4/ping_group_range"})


def as_container_root(c: Container, kinds: tuple[str, ...], fn: Callable[[], bytes | None]) -> bytes:
    """fn() in a forked child that joined the container's `kinds` namespaces, then its user
    namespace as uid/gid 0 there: what the kernel allows that child is what it allows the
    container's root.  Returns what fn returned (through a pipe); OSError with the child's errno."""
    fds = {kind: c.ns_fds[kind] for kind in kinds}
    fds["user"] = c.ns_fds["user"]
    rfd, wfd = os.pipe2(os.O_CLOEXEC)

    def child() -> int:
        os.close(rfd)
        ns.enter(fds, (*kinds, "user"))
        sc.set_ids_in_userns()
        out = fn() or b""
        while out:
            out = out[os.write(wfd, out[:65536]):]
        return 0

    try:
        code = ns.fork_and_wait(child, timeout=10.0)
        os.close(wfd)
        wfd = -1
        chunks = []
        while chunk := os.read(rfd, 65536):
            chunks.append(chunk)
    finally:
        os.close(rfd)
        if wfd >= 0:
            os.close(wfd)
    if code:
        raise OSError(code, os.strerror(code))
    return b"".join(chunks)


def in_namespaces(c: Container | None, kinds: tuple[str, ...], fn: Callable[[], T]) -> T:
    """fn() with this thread in the container's `kinds` namespaces (linux.ns.within); the
    host's when there is no container."""
    if c is None or not kinds:
        return fn()
    return ns.within(c.ns_fds, kinds, fn)


class Entry:
    """An emulated file inside a mirrored directory."""

    mode = 0o644

    def read(self, c: Container, rel: str) -> bytes:
        raise NotImplementedError

    def write(self, c: Container, rel: str, data: bytes) -> None:
        raise OSError(errno.EACCES, "read-only")


class HostMirror(Subtree):
    base = "/"
    hidden: frozenset[str] = frozenset()      # shown as empty directories
    absent: frozenset[str] = frozenset()      # not shown at all
    emulated: ClassVar[dict[str, Entry]] = {}

    def namespaces(self, rel: str) -> tuple[str, ...]:
        return ()

    def writable(self, rel: str) -> bool:
        return False

    def root(self, c: Container | None) -> str:
        """The directory mirrored for this caller (the host's, unless a subclass says otherwise)."""
        return self.base

    def _path(self, rel: str, c: Container | None = None) -> str:
        base = self.root(c)
        return os.path.join(base, rel) if rel else base

    def _virtual_dir(self, rel: str) -> bool:
        prefix = rel + "/" if rel else ""
        return any(e.startswith(prefix) for e in self.emulated) or any(h.startswith(prefix) for h in self.hidden)

    def _under_hidden(self, rel: str) -> bool:
        return any(rel.startswith(h + "/") for h in self.hidden) or \
            any(rel == a or rel.startswith(a + "/") for a in self.absent)

    def container_owns(self, rel: str, c: Container | None) -> bool:
        """Is the real file at rel the container's (a knob of a namespace its user namespace
        owns), rather than the host's?"""
        kinds = self.namespaces(rel)
        return bool(kinds) and c is not None and all(c.owned.get(k, False) for k in kinds)

    def stat(self, rel: str, c: Container | None) -> Stat | None:
        if rel in self.emulated:
            return Stat(False, self.emulated[rel].mode)
        if rel in self.hidden:
            return Stat(True, 0o555)
        if self._under_hidden(rel):
            return None
        try:
            st = in_namespaces(c, self.namespaces(rel), lambda: os.lstat(self._path(rel, c)))
        except OSError:
            return Stat(True, 0o555) if self._virtual_dir(rel) else None
        if st_.S_ISDIR(st.st_mode):
            return Stat(True, 0o555)
        if st_.S_ISLNK(st.st_mode):
            return Stat(False, 0o777, is_link=True)
        mode = st.st_mode & (0o777 if self.writable(rel) else 0o555)
        return Stat(False, mode, uid=st.st_uid, gid=st.st_gid)

    def listdir(self, rel: str, c: Container | None) -> list[tuple[str, bool]]:
        if rel in self.hidden:
            return []
        names: dict[str, bool] = {}

        def scan() -> None:
            with os.scandir(self._path(rel, c)) as it:
                for e in it:
                    names[e.name] = e.is_dir(follow_symlinks=False)
        try:
            in_namespaces(c, self.namespaces(rel), scan)
        except OSError:
            if not self._virtual_dir(rel):
                raise
        for name in self.absent:
            if os.path.dirname(name) == rel:
                names.pop(os.path.basename(name), None)
        prefix = rel + "/" if rel else ""
        for path in list(self.emulated) + list(self.hidden):
            if path.startswith(prefix):
                head, _, tail = path[len(prefix):].partition("/")
                names[head] = bool(tail) or path in self.hidden
        return sorted(names.items())

    def read(self, rel: str, c: Container) -> bytes:
        if rel in self.emulated:
            return self.emulated[rel].read(c, rel)

        def do() -> bytes:
            with open(self._path(rel, c), "rb") as f:
                return f.read()
        if rel in ID_KNOBS and self.container_owns(rel, c):
            return as_container_root(c, self.namespaces(rel), do)
        return in_namespaces(c, self.namespaces(rel), do)

    def write(self, rel: str, c: Container, data: bytes) -> None:
        if rel in self.emulated:
            return self.emulated[rel].write(c, rel, data)
        if not self.writable(rel):
            raise OSError(errno.EACCES, "not writable from a container")

        path = self._path(rel, c)

        def do() -> None:
            fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
            try:
                os.write(fd, data)
            finally:
                os.close(fd)
        as_container_root(c, self.namespaces(rel), do)

    def readlink(self, rel: str, c: Container | None = None) -> str:
        return os.readlink(self._path(rel, c))
