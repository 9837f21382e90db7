"""Emulated /proc and /sys nodes, one module per path, behind one table.

A File answers read() with the whole content for the calling container (generated at open,
as lxcfs does, so one open sees one consistent snapshot) and write() with the new value or an
OSError carrying the errno the kernel would give.  A Subtree serves a whole directory (e.g.
/proc/sys) with stat/listdir/read/write on relative paths.

sysbox.fs.mounts says where each node is mounted in a container (tests check the two agree).
"""

from __future__ import annotations

import errno
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from sysbox.fs.container import Container


@dataclass(frozen=True)
class Stat:
    is_dir: bool
    mode: int
    size: int = 4096          # non-zero: with size 0, kernels >= 6.5 show page-cache reads as empty
    is_link: bool = False
    # Owner, as host ids; None: the container's root (emulated files).  A real file keeps the
    # owner the kernel gives it (host root for host knobs, the container's root for knobs of a
    # network namespace it owns), and open() applies the mode bits to the caller as the kernel
    # would: owner, group, or other.
    uid: int | None = None
    gid: int | None = None


class File:
    mode = 0o444

    def read(self, c: Container) -> bytes:
        raise NotImplementedError

    def write(self, c: Container, data: bytes) -> None:
        raise OSError(errno.EACCES, "read-only")


class Subtree:
    def stat(self, rel: str, c: Container | None) -> Stat | None:
        raise NotImplementedError

    def listdir(self, rel: str, c: Container | None) -> list[tuple[str, bool]]:
        raise NotImplementedError

    def read(self, rel: str, c: Container) -> bytes:
        raise NotImplementedError

    def write(self, rel: str, c: Container, data: bytes) -> None:
        raise OSError(errno.EACCES, "read-only")

    def readlink(self, rel: str, c: Container | None = None) -> str:
        raise OSError(errno.EINVAL, "not a link")


def parse_int(data: bytes, lo: int | None = None, hi: int | None = None) -> int:
    """A sysctl-style integer write ("42\\n"); EINVAL outside [lo, hi] or if not a number."""
    try:
        value = int(data.decode().strip())
    except (UnicodeDecodeError, ValueError):
        raise OSError(errno.EINVAL, "not an integer") from None
    if (lo is not None and value < lo) or (hi is not None and value > hi):
        raise OSError(errno.EINVAL, "out of range")
    return value


def host_read(path: str) -> bytes:
    """A whole kernel file, without the io-object layers (this runs on every emulated open)."""
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        chunks = []
        while chunk := os.read(fd, 65536):
            chunks.append(chunk)
        return b"".join(chunks)
    finally:
        os.close(fd)


T = TypeVar("T")
_HOST: dict[str, tuple[float, Any]] = {}  # path -> (when read, parsed)


def shared_host(path: str, ttl: float, parse: Callable[[bytes], T]) -> T:
    """A host file, parsed once per `ttl` seconds for every container's reads (50 containers
    polling meminfo would otherwise each read and parse the same file)."""
    now = time.monotonic()
    hit = _HOST.get(path)
    if hit is None or now - hit[0] >= ttl:
        hit = _HOST[path] = (now, parse(host_read(path)))
    value: T = hit[1]
    return value


def _table() -> tuple[dict[str, File], dict[str, Subtree]]:
    from sysbox.fs.nodes import (
        proc_cpuinfo,
        proc_diskstats,
        proc_loadavg,
        proc_meminfo,
        proc_pressure,
        proc_stat,
        proc_swaps,
        proc_sys,
        proc_uptime,
        sys_cpu_online,
        sys_devices_virtual,
        sys_kernel,
        sys_nf_conntrack,
    )

    files: dict[str, File] = {
        "proc/uptime": proc_uptime.Uptime(),
        "proc/swaps": proc_swaps.Swaps(),
        "proc/meminfo": proc_meminfo.Meminfo(),
        "proc/cpuinfo": proc_cpuinfo.Cpuinfo(),
        "proc/stat": proc_stat.Stat(),
        "proc/loadavg": proc_loadavg.Loadavg(),
        "proc/diskstats": proc_diskstats.Diskstats(),
        "sys/devices/system/cpu/online": sys_cpu_online.Online(),
    }
    subtrees: dict[str, Subtree] = {
        "proc/sys": proc_sys.ProcSys(),
        "sys/kernel": sys_kernel.SysKernel(),
        "sys/devices/virtual": sys_devices_virtual.DevicesVirtual(),
    }
    if proc_pressure.kinds():
        subtrees["proc/pressure"] = proc_pressure.Pressure()
    if os.path.isdir(sys_nf_conntrack.HOST):
        subtrees["sys/module/nf_conntrack/parameters"] = sys_nf_conntrack.Parameters()
    return files, subtrees


FILES, SUBTREES = _table()
