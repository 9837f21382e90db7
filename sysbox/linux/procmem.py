"""Reading a trapped caller's memory (its syscall's pointer arguments) through /proc/<pid>/mem.

The seccomp notification gives addresses in the caller's address space; the kernel would
fault on a bad one, so these answer EFAULT (and ENAMETOOLONG past the limit) the same way.
The caller may change the memory after we read it: whoever acts on the value must not let
that matter (the trap re-checks the notification id before answering).
"""

from __future__ import annotations

import errno
import os


def read_string(pid: int, addr: int, limit: int = 4096) -> str:
    """A NUL-terminated string from the caller's memory, read page by page (EFAULT for a bad
    pointer, ENAMETOOLONG past `limit`, as the kernel would answer)."""
    if not addr:
        raise OSError(errno.EFAULT, "null pointer")
    out = b""
    fd = os.open(f"/proc/{pid}/mem", os.O_RDONLY | os.O_CLOEXEC)
    try:
        while len(out) < limit:
            try:
                chunk = os.pread(fd, 4096 - (addr % 4096), addr)
            except OSError:
                raise OSError(errno.EFAULT, "bad address") from None
            if not chunk:
                raise OSError(errno.EFAULT, "bad address")
            nul = chunk.find(b"\0")
            if nul >= 0:
                return (out + chunk[:nul]).decode(errors="surrogateescape")
            out += chunk
            addr += len(chunk)
    finally:
        os.close(fd)
    raise OSError(errno.ENAMETOOLONG, "string too long")


def read_memory(pid: int, addr: int, size: int) -> bytes:
    """`size` bytes of the caller's memory (EFAULT for a bad pointer)."""
    fd = os.open(f"/proc/{pid}/mem", os.O_RDONLY | os.O_CLOEXEC)
    try:
        data = os.pread(fd, size, addr)
    except OSError:
        raise OSError(errno.EFAULT, "bad address") from None
    finally:
        os.close(fd)
    if len(data) != size:
        raise OSError(errno.EFAULT, "bad address")
    return data


def open_mem(pid: int) -> int:
    """The caller's memory for writing, bound to its address space from now on (a pid that
    is reused later does not redirect it)."""
    return os.open(f"/proc/{pid}/mem", os.O_RDWR | os.O_CLOEXEC)


def writable(pid: int, addr: int, size: int) -> bool:
    """Is [addr, addr+size) mapped writable in the caller?  /proc/PID/mem writes through page
    protections (FOLL_FORCE); the kernel's own copy-out would fault on a read-only page, and
    so must we."""
    end = addr + size
    with open(f"/proc/{pid}/maps", "rb") as f:
        for line in f:
            span, perms = line.split(b" ", 2)[:2]
            lo, hi = (int(x, 16) for x in span.split(b"-"))
            if lo <= addr < hi:
                if perms[1:2] != b"w":
                    return False
                if end <= hi:
                    return True
                addr = hi  # continues in the next mapping, which must start here
            elif lo > addr:
                return False
    return False


def write_memory(fd: int, addr: int, data: bytes) -> None:
    try:
        written = os.pwrite(fd, data, addr)
    except OSError:
        raise OSError(errno.EFAULT, "bad address") from None
    if written != len(data):
        raise OSError(errno.EFAULT, "bad address")
