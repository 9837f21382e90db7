"""Parsing /proc/<pid>/mountinfo (octal escapes included)."""

from __future__ import annotations

import os

_OCTAL = frozenset("01234567")


def unescape(s: str) -> str:
    """The kernel's \\ooo escapes (space, tab, newline, backslash) undone; without `re`, which
    sysbox-runc's create would otherwise import for this alone (~5 ms)."""
    if "\\" not in s:
        return s
    out: list[str] = []
    i = 0
    while (j := s.find("\\", i)) >= 0:
        code = s[j + 1:j + 4]
        if len(code) == 3 and _OCTAL.issuperset(code):
            out += (s[i:j], chr(int(code, 8)))
            i = j + 4
        else:
            out.append(s[i:j + 1])
            i = j + 1
    out.append(s[i:])
    return "".join(out)


class Mount:
    """One mountinfo line.  A plain class: namedtuple costs sysbox-runc ~5 ms of imports
    (collections) on every create and delete, dataclasses ~12 ms."""

    __slots__ = ("fstype", "id", "options", "parent", "point", "root", "source", "super_options")

    def __init__(self, id: int, parent: int, root: str, point: str, options: str, fstype: str, source: str,
                 super_options: str) -> None:
        self.id, self.parent, self.root, self.point = id, parent, root, point
        self.options, self.fstype, self.source, self.super_options = options, fstype, source, super_options

    def __repr__(self) -> str:
        return f"Mount({self.id}, {self.parent}, {self.root!r}, {self.point!r}, {self.fstype!r})"

    def super_option(self, name: str) -> str | None:
        """Value of `name=` among the superblock options (e.g. overlay's lowerdir)."""
        for opt in self.super_options.split(","):
            key, eq, value = opt.partition("=")
            if key == name:
                return unescape(value) if eq else ""
        return None


def parse(text: str) -> list[Mount]:
    mounts = []
    for line in text.splitlines():
        f = line.split(" ")
        sep = f.index("-")
        mounts.append(Mount(int(f[0]), int(f[1]), unescape(f[3]), unescape(f[4]), f[5],
                            f[sep + 1], unescape(f[sep + 2]), " ".join(f[sep + 3:])))
    return mounts


def read(pid: int | str = "self") -> list[Mount]:
    with open(f"/proc/{pid}/mountinfo") as f:
        return parse(f.read())


def read_at(proc_fd: int) -> list[Mount]:
    """The reader's own mountinfo through a procfs directory fd (a helper that has entered
    another mount namespace keeps the host's procfs open: paths are relative to its root)."""
    with open(os.open("self/mountinfo", os.O_RDONLY | os.O_CLOEXEC, dir_fd=proc_fd)) as f:
        return parse(f.read())


def at(point: str, pid: int | str = "self") -> Mount | None:
    """The top-most mount at exactly `point`."""
    found = None
    for m in read(pid):
        if m.point == point:
            found = m
    return found


def fstype_of(path: str) -> str:
    """The filesystem type of the mount that holds `path` (the longest matching mount point)."""
    best, fstype = "", ""
    for m in read():
        if (path == m.point or path.startswith(m.point.rstrip("/") + "/")) and len(m.point) >= len(best):
            best, fstype = m.point, m.fstype
    return fstype

