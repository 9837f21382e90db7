"""Receiving seccomp notify fds from runc and answering every notification on them.

runc (linux.seccomp.listenerPath) connects once per container process that loads the filter
(init and every exec) and sends its state as JSON with the notify fd (SCM_RIGHTS).  Each fd
is served until every process using it is gone (POLLHUP).  mount(2) and umount2(2) are
trapped, and so are the new mount API calls and the mode/xattr calls that could make a setuid
file or a file capability (sysbox.fs.trap.guards).  The rules, in order:

- Every notification gets an answer: an errno, a result, or CONTINUE.  No exception in one
  request reaches the loop that serves the fd, and a failing accept (EMFILE) is retried.
- CONTINUE (the kernel runs the call with the caller's own credentials) is the answer
  whenever the caller lacks CAP_SYS_ADMIN over the user namespace that owns its mount (and,
  for proc, pid) namespace: the kernel then refuses it as it would anywhere.  Nothing is
  ever done as host root for a caller the kernel would refuse.
- Emulated work (a procfs with sysbox-fs nodes, umount in the container's initial mount
  namespace, the immutable-mount checks) runs in a worker thread, one at a time per listener
  fd: a container flooding trapped calls queues behind itself, and the FUSE thread, which
  serves every container's /proc reads, never waits for it.
"""

from __future__ import annotations

import array
import errno
import logging
import math
import os
import select
import socket
from typing import Any

import trio

from sysbox.fs.registry import Registry
from sysbox.fs.trap import guards, procmount, sysinfo
from sysbox.linux import ns, seccomp
from sysbox.linux import syscalls as sc
from sysbox.linux.procmem import open_mem, read_memory, read_string, writable, write_memory

log = logging.getLogger("sysbox-fs")
_PROPAGATION = sc.MS_SHARED | sc.MS_SLAVE | sc.MS_PRIVATE | sc.MS_UNBINDABLE
_NOT_NEW = sc.MS_REMOUNT | sc.MS_BIND | sc.MS_MOVE | _PROPAGATION
CONTINUE = object()
ACCEPT_RETRY = 0.1  # seconds to wait after accept fails for lack of fds


def _or_continue(code: int) -> object:
    """A helper's NOT_OURS becomes CONTINUE: the kernel runs the call."""
    return CONTINUE if code == ns.NOT_OURS else code


def _privileged(pid: int, kinds: tuple[str, ...]) -> bool:
    """CAP_SYS_ADMIN over the user namespace owning each of the caller's `kinds` namespaces."""
    return all(ns.has_cap_over(pid, f"/proc/{pid}/ns/{k}") for k in kinds)


class Trap:
    def __init__(self, registry: Registry, holder: Any = None) -> None:
        self.registry = registry
        self.holder = holder  # sysbox.fs.handover.HolderClient: keeps the listeners across restarts
        self.nursery: trio.Nursery | None = None
        self.queues: dict[str, trio.MemorySendChannel[list[Any]]] = {}
        self.served = 0
        self.emulated = 0
        self.failed = 0  # requests whose handling raised (answered with an errno all the same)
        self.listeners = 0  # listener fds being served (one per container process tree)

    async def serve(self, path: str, task_status=trio.TASK_STATUS_IGNORED) -> None:
        from sysbox.ipcserver import bind_unix

        sock = await bind_unix(path)
        task_status.started()
        async with trio.open_nursery() as nursery:
            failing = False
            while True:
                try:
                    conn, _ = await sock.accept()
                except OSError as e:  # EMFILE/ENFILE/ENOMEM: refuse new work, keep serving
                    if not failing:
                        log.warning("seccomp listener socket: accept failed (%s); retrying", e.strerror)
                    failing = True
                    await trio.sleep(ACCEPT_RETRY)
                    continue
                if failing:
                    log.info("seccomp listener socket: accepting again")
                    failing = False
                nursery.start_soon(self._connection, conn, nursery)

    async def serve_adopted(self, task_status=trio.TASK_STATUS_IGNORED) -> None:
        """Serve the listener fds the holder gives us (adopt), until cancelled."""
        async with trio.open_nursery() as nursery:
            self.nursery = nursery
            task_status.started()
            await trio.sleep_forever()

    def adopt(self, name: str, fd: int) -> None:
        """A listener the holder keeps (a new one from runc, or one a previous sysbox-fs
        served).  The holder receives its notifications and passes them on (on_message);
        they are answered here in order, one at a time, through our copy of the fd."""
        assert self.nursery is not None
        if name in self.queues:
            os.close(fd)
            return
        send, recv = trio.open_memory_channel[list[Any]](math.inf)
        self.queues[name] = send
        if self.holder is not None:
            self.holder.adopted(name, fd, {})  # to give a new holder, should this one die
        self.listeners += 1
        self.nursery.start_soon(self._serve_queue, name, fd, recv)

    def on_message(self, msg: dict[str, Any]) -> None:
        q = self.queues.get(str(msg.get("name")))
        if q is None:
            return
        if msg.get("op") == "notif" and isinstance(msg.get("n"), list):
            q.send_nowait([*msg["n"], bool(msg.get("replay"))])
        elif msg.get("op") == "gone":
            q.close()  # every process using it is gone: the queue drains, then the fd closes

    async def _serve_queue(self, name: str, fd: int, recv: trio.MemoryReceiveChannel[list[Any]]) -> None:
        try:
            async with recv:
                async for entry in recv:
                    try:
                        nid, pid, nr, arch, args, decided, replay = entry
                        n = seccomp.Notification(int(nid), int(pid), int(nr), int(arch), tuple(int(a) for a in args))
                    except (TypeError, ValueError):
                        continue
                    await self._answer(fd, n, name, decided, replay)
        finally:
            self.listeners -= 1
            self.queues.pop(name, None)
            if self.holder is not None:
                self.holder.forget(name)
            os.close(fd)

    async def _connection(self, conn, nursery) -> None:
        fds = array.array("i")
        with conn:
            try:
                _msg, ancdata, _flags, _addr = await conn.recvmsg(65536, socket.CMSG_SPACE(4 * fds.itemsize))
            except OSError:
                return
            for level, kind, data in ancdata:
                if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                    fds.frombytes(data[: len(data) - (len(data) % fds.itemsize)])
        for fd in fds:
            nursery.start_soon(self._serve_fd, fd)

    async def _serve_fd(self, fd: int) -> None:
        """A listener served by us alone (no holder): received and answered here."""
        poller = select.poll()
        poller.register(fd, select.POLLIN)
        self.listeners += 1
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
                await self._answer(fd, n)
        finally:
            self.listeners -= 1
            os.close(fd)

    async def _answer(self, fd: int, n: seccomp.Notification, name: str = "", decided: Any = None,
                      replay: bool = False) -> None:
        """Decide in a worker thread, then answer: always exactly one answer per notification.
        sysinfo(2) is answered here: a few small reads, and programs call it often.  With a
        holder (`name`), the decision is told to it before the answer, and the answer after:
        a notification a killed sysbox-fs had decided is answered as decided by the next one
        (`decided`), not acted on twice.  One it had not decided yet (`replay`) may have been
        acted on all the same (an emulated umount done by its helper): a replayed umount that
        finds nothing mounted answers success, the dead one's."""
        self.served += 1
        try:
            if decided is not None:
                result: object = CONTINUE if decided == "continue" else int(decided)
            elif seccomp.TRAPPED_NAMES.get(n.nr) == "sysinfo":
                result = self._sysinfo(fd, n)
            else:
                result = await trio.to_thread.run_sync(self._decide, n)
        except Exception as e:  # noqa: BLE001 - contained to this request
            self.failed += 1
            log.warning("trap: pid %d, syscall %d: %s: %s; answered EPERM", n.pid, n.nr, type(e).__name__, e)
            result = errno.EPERM
        if replay and result == errno.EINVAL and seccomp.TRAPPED_NAMES.get(n.nr) == "umount2":
            result = 0
        if self.holder is not None and name and decided is None:
            self.holder.decided(name, n.id, "continue" if result is CONTINUE else int(result or 0))  # type: ignore[call-overload]
        try:
            if result is CONTINUE:
                seccomp.allow(fd, n.id)
            else:
                seccomp.respond(fd, n.id, error=-int(result) if result else 0)  # type: ignore[call-overload]
        except OSError as e:
            if e.errno != errno.ENOENT:  # ENOENT: the caller was killed; nobody waits any more
                log.warning("trap: could not answer pid %d: %s", n.pid, e.strerror)
        if self.holder is not None and name:
            self.holder.answered(name, n.id)

    # -- deciding (worker thread) ---------------------------------------------------------------

    def _decide(self, n: seccomp.Notification) -> object:
        try:
            name = seccomp.TRAPPED_NAMES.get(n.nr)
            if name == "umount2":
                return self._umount(n)
            if name == "mount":
                return self._mount(n)
            if name in ("open_tree", "move_mount", "mount_setattr", "fsopen"):
                return self._mount_api(name, n)
            if name is not None:
                return self._guard_mode(name, n)
            return CONTINUE
        except OSError as e:
            if e.errno in (errno.ESRCH, errno.ENOENT) and not os.path.exists(f"/proc/{n.pid}"):
                return errno.ESRCH  # the caller is gone; the answer goes nowhere
            return e.errno or errno.EIO

    def _sysinfo(self, fd: int, n: seccomp.Notification) -> object:
        """The container's struct sysinfo, written where the caller asked; EFAULT where the
        kernel would fault.  The memory is opened, and the maps read, before the notification
        is confirmed pending: both then belong to the caller, not to a process reusing its pid."""
        c = self.registry.caller(n.pid)
        if c is None:
            return CONTINUE
        addr = n.args[0]
        try:
            mem = open_mem(n.pid)
        except OSError:
            return errno.ESRCH
        try:
            ok = writable(n.pid, addr, sysinfo.SIZE)
            if not seccomp.id_valid(fd, n.id):
                return errno.ESRCH  # the caller is gone; the answer goes nowhere
            if not ok:
                return errno.EFAULT
            write_memory(mem, addr, sysinfo.build(c))
        finally:
            os.close(mem)
        return 0

    def _mount(self, n: seccomp.Notification) -> object:
        flags = n.args[3] & 0xFFFFFFFF
        c = self.registry.caller(n.pid)
        if c is None:
            return CONTINUE
        fstype = read_string(n.pid, n.args[2]) if n.args[2] and not flags & _NOT_NEW else ""
        if fstype == "proc" and not flags & _NOT_NEW:
            if not _privileged(n.pid, ("mnt", "pid")):
                return CONTINUE  # the kernel refuses it, as for any unprivileged caller
            target = read_string(n.pid, n.args[1])
            data = read_string(n.pid, n.args[4]) if n.args[4] else ""
            code = procmount.mount_proc(n.pid, target, flags, data, c.mountpoint, c.masked)
            self.emulated += 1
            log.info("mount proc at %s for pid %d of %s: %s", target, n.pid, c.id,
                     os.strerror(code) if code else "ok")
            return code
        if not flags & (sc.MS_REMOUNT | sc.MS_MOVE | sc.MS_BIND) or flags & _PROPAGATION:
            return CONTINUE
        if ns.ns_ino(n.pid, "mnt") != c.mntns or not _privileged(n.pid, ("mnt",)):
            return CONTINUE
        imm = c.immutables()
        source = read_string(n.pid, n.args[0]) if n.args[0] and flags & (sc.MS_MOVE | sc.MS_BIND) else ""
        target = read_string(n.pid, n.args[1]) if flags & sc.MS_REMOUNT else ""
        code = procmount.check_mount(n.pid, source, target, flags, imm.ids, imm.readonly, imm.parents)
        return _or_continue(code)

    def _mount_api(self, name: str, n: seccomp.Notification) -> object:
        """The new mount API: the same immutable mounts as mount(2) guards, in the initial mount
        namespace, for a caller the kernel would let through."""
        c = self.registry.caller(n.pid)
        if c is None or not _privileged(n.pid, ("mnt",)):
            return CONTINUE
        if name == "fsopen":
            code = guards.fsopen(read_string(n.pid, n.args[0], limit=256))
            return _or_continue(code)
        if ns.ns_ino(n.pid, "mnt") != c.mntns:
            return CONTINUE
        imm = c.immutables()
        path = read_string(n.pid, n.args[1]) if n.args[1] else ""
        if name == "open_tree":
            code = guards.open_tree(n.pid, n.args, path, imm.parents)
        elif name == "move_mount":
            code = guards.move_mount(n.pid, n.args, path, imm.ids)
        else:
            size = min(n.args[4], 64)
            attr = read_memory(n.pid, n.args[3], size) if size else b""
            code = guards.mount_setattr(n.pid, n.args, path, attr, imm.readonly, imm.ro_ancestors)
        return _or_continue(code)

    def _guard_mode(self, name: str, n: seccomp.Notification) -> object:
        """setuid/setgid bits and file capabilities, refused on bind-mounted host dirs."""
        if self.registry.caller(n.pid) is None:
            return CONTINUE
        a = n.args
        at = guards.AT_FDCWD
        if name in ("chmod", "creat", "mknod", "open"):
            path = read_string(n.pid, a[0])
            if name == "chmod":
                code = guards.set_mode(n.pid, at, path, a[1])
            else:
                code = guards.create_with_mode(n.pid, at, path, a[2] if name == "open" else a[1])
        elif name == "fchmod":
            code = guards.set_mode(n.pid, guards.as_int(a[0]), "", a[1], empty_ok=True)
        elif name in ("fchmodat", "fchmodat2"):
            flags = guards.as_int(a[3]) if name == "fchmodat2" else 0
            code = guards.set_mode(n.pid, guards.as_int(a[0]), read_string(n.pid, a[1]) if a[1] else "", a[2],
                                   follow=not flags & guards.AT_SYMLINK_NOFOLLOW,
                                   empty_ok=bool(flags & guards.AT_EMPTY_PATH))
        elif name in ("openat", "mknodat"):
            code = guards.create_with_mode(n.pid, guards.as_int(a[0]), read_string(n.pid, a[1]),
                                           a[3] if name == "openat" else a[2])
        else:  # setxattr, lsetxattr, fsetxattr
            xname = read_string(n.pid, a[1], limit=256)
            if xname != guards.CAPABILITY_XATTR:
                return CONTINUE
            if name == "fsetxattr":
                code = guards.set_xattr(n.pid, guards.as_int(a[0]), "", xname, True, True)
            else:
                code = guards.set_xattr(n.pid, at, read_string(n.pid, a[0]), xname, name == "setxattr", False)
        return _or_continue(code)

    def _umount(self, n: seccomp.Notification) -> object:
        c = self.registry.caller(n.pid)
        if c is None or not _privileged(n.pid, ("mnt",)):
            return CONTINUE
        target = read_string(n.pid, n.args[0])
        initial = ns.ns_ino(n.pid, "mnt") == c.mntns
        code = procmount.umount(n.pid, target, n.args[1] & 0xFFFFFFFF,
                                c.immutables().ids if initial else frozenset(), initial)
        return _or_continue(code)
