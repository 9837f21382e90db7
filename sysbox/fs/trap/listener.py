"""Receiving seccomp notify fds from runc and serving them.

runc (linux.seccomp.listenerPath) connects once per container process that loads the filter
(init and every exec) and sends its state as JSON with the notify fd (SCM_RIGHTS).  Each fd
is served until every process using it is gone (POLLHUP).  Only mount(2) is trapped; a
procfs mount is emulated (trap.procmount), anything else continues in the kernel with the
caller's own credentials.
"""

from __future__ import annotations

import array
import errno
import logging
import os
import select
import socket
import trio

from sysbox.fs.registry import Registry
from sysbox.linux import seccomp

log = logging.getLogger("sysbox-fs")
MOUNT_NR = {"x86_64": 165, "aarch64": 40}.get(os.uname().machine, 165)
UMOUNT2_NR = {"x86_64": 166, "aarch64": 39}.get(os.uname().machine, 166)
# mount flags that make it something other than a new mount
_NOT_NEW = 0x20 | 0x1000 | 0x2000 | 0x40000 | 0x80000 | 0x100000 | 0x20000  # REMOUNT BIND MOVE SHARED SLAVE PRIVATE UNBINDABLE
CAP_SYS_ADMIN = 21


def read_string(pid: int, addr: int, limit: int = 4096) -> str:
    """A NUL-terminated string from the caller's memory, read page by page."""
    if not addr:
        return ""
    out = b""
    fd = os.open(f"/proc/{pid}/mem", os.O_RDONLY | os.O_CLOEXEC)
    try:
        while len(out) < limit:
            chunk = os.pread(fd, 4096 - (addr % 4096), addr)
            if not chunk:
                break
            nul = chunk.find(b"\0")
            if nul >= 0:
                return (out + chunk[:nul]).decode(errors="surrogateescape")
            out += chunk
            addr += len(chunk)
    finally:
        os.close(fd)
    raise OSError(errno.ENAMETOOLONG, "string too long")


def has_cap(pid: int, cap: int) -> bool:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("CapEff:"):
                return bool(int(line.split()[1], 16) >> cap & 1)
    return False


class Trap:
    def __init__(self, registry: Registry, mountpoint: str) -> None:
        self.registry, self.mountpoint = registry, mountpoint
        self.served = 0
        self.emulated = 0

    async def serve(self, path: str, task_status=trio.TASK_STATUS_IGNORED) -> None:
        from sysbox.ipcserver import bind_unix

        sock = await bind_unix(path)
        task_status.started()
        async with trio.open_nursery() as nursery:
            while True:
                conn, _ = await sock.accept()
                nursery.start_soon(self._connection, conn, nursery)

    async def _connection(self, conn, nursery) -> None:
        with conn:
            fds = array.array("i")
            try:
                msg, ancdata, _flags, _addr = await conn.recvmsg(65536, socket.CMSG_SPACE(4 * fds.itemsize))
            except OSError:
                return
            for level, kind, data in ancdata:
                if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                    fds.frombytes(data[: len(data) - (len(data) % fds.itemsize)])
        for fd in fds:
            nursery.start_soon(self._serve_fd, fd)

    async def _serve_fd(self, fd: int) -> None:
        poller = select.poll()
        poller.register(fd, select.POLLIN)
        try:
            while True:
                await trio.lowlevel.wait_readable(fd)
                events = dict(poller.poll(0)).get(fd, 0)
                if events & (select.POLLHUP | select.POLLERR) and not events & select.POLLIN:
                    return  # every process using this filter is gone
                try:
                    n = seccomp.recv(fd)
                except OSError:
                    continue  # the caller died meanwhile (ENOENT)
                await self._handle(fd, n)
        finally:
            os.close(fd)

    async def _umount(self, fd: int, n: seccomp.Notification) -> None:
        from sysbox.fs.trap.procmount import has_emulated_proc, umount_proc

        if not has_emulated_proc(n.pid) or not has_cap(n.pid, CAP_SYS_ADMIN):
            return seccomp.allow(fd, n.id)
        target = read_string(n.pid, n.args[0])
        if not seccomp.id_valid(fd, n.id):
            return
        code = await trio.to_thread.run_sync(umount_proc, n.pid, target, n.args[1] & 0xFFFFFFFF)
        if code < 0:
            return seccomp.allow(fd, n.id)
        seccomp.respond(fd, n.id, error=-code if code else 0)

    async def _handle(self, fd: int, n: seccomp.Notification) -> None:
        self.served += 1
        try:
            if n.nr == UMOUNT2_NR:
                return await self._umount(fd, n)
            if n.nr != MOUNT_NR:
                return seccomp.allow(fd, n.id)
            fstype = read_string(n.pid, n.args[2]) if n.args[2] else ""
            flags = n.args[3]
            if fstype != "proc" or flags & _NOT_NEW:
                return seccomp.allow(fd, n.id)
            target = read_string(n.pid, n.args[1])
            data = read_string(n.pid, n.args[4]) if n.args[4] else ""
            c = self.registry.caller(n.pid)
            if c is None or not seccomp.id_valid(fd, n.id):
                return seccomp.allow(fd, n.id)
            if not has_cap(n.pid, CAP_SYS_ADMIN):
                return seccomp.respond(fd, n.id, error=-errno.EPERM)
            from sysbox.fs.trap.procmount import mount_proc

            code = await trio.to_thread.run_sync(mount_proc, n.pid, target, flags & 0xFFFFFFFF, data,
                                                 self.mountpoint, c.masked)
            self.emulated += 1
            log.info("mount proc at %s for pid %d of %s: %s", target, n.pid, c.id, os.strerror(code) if code else "ok")
            seccomp.respond(fd, n.id, error=-code if code else 0)
        except OSError as e:
            if e.errno == errno.ENOENT:  # the notification is gone (caller killed)
                return
            log.warning("trap: %s; letting the kernel handle the call", e)
            try:
                seccomp.allow(fd, n.id)
            except OSError:
                pass
