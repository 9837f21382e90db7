"""Namespaces and privilege, as the kernel judges them, read from the host side.

The daemons run as host root and act for processes inside containers.  Before doing anything
for a caller they ask the kernel's own question: does this process hold the capability in
the user namespace that owns the target (its mount, network, UTS or IPC namespace)?  These
helpers answer it from /proc and the nsfs ioctls, without trusting anything the caller says.

`run_in_mount_ns` is the one way to resolve a path the way a caller would: a forked child
enters the caller's mount namespace, root and working directory, and works there, so no
path from a container is ever looked up on the host.  `fork_and_wait` is the one fork helper
every such child goes through.
"""

from __future__ import annotations

import errno
import fcntl
import os

from sysbox.linux import syscalls as sc
from sysbox.linux.proc import cap_eff
from sysbox.typing_lite import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import TypeVar

    T = TypeVar("T")

NS_GET_USERNS = 0xB701
NS_GET_PARENT = 0xB702
CAP_SYS_ADMIN = 21
NOT_OURS = 255  # exit code of a helper that declines: let the kernel handle the call
HELPER_NICE = 10  # helpers run below the daemon that forked them


def ns_ino(pid: int | str, kind: str) -> int:
    return os.stat(f"/proc/{pid}/ns/{kind}").st_ino


def owner_ino(ns_path: str) -> int:
    """The inode of the user namespace that owns the namespace at ns_path (NS_GET_USERNS)."""
    fd = os.open(ns_path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        owner = fcntl.ioctl(fd, NS_GET_USERNS)
    finally:
        os.close(fd)
    try:
        return os.fstat(owner).st_ino
    finally:
        os.close(owner)


def has_cap_over(pid: int | str, ns_path: str, cap: int = CAP_SYS_ADMIN) -> bool:
    """Does `pid` hold `cap` over the namespace at ns_path, by the kernel's rule?

    A process has a capability in a user namespace if it is a member of that namespace with
    the capability effective.  (Members of an ancestor namespace can hold it too, through the
    namespace creator's euid; sysbox never needs that case, so it is answered no: refusing
    is always allowed, doing more than the kernel would is not.)"""
    return ns_ino(pid, "user") == owner_ino(ns_path) and bool(cap_eff(pid) >> cap & 1)


def open_ns_fds(pid: int, names: tuple[str, ...]) -> dict[str, int]:
    """fds for /proc/pid/{ns/<kind>, root, cwd}; all closed again if one fails."""
    paths = {"root": "root", "cwd": "cwd"}
    fds: dict[str, int] = {}
    try:
        for name in names:
            fds[name] = os.open(f"/proc/{pid}/{paths.get(name, 'ns/' + name)}", os.O_RDONLY | os.O_CLOEXEC)
    except BaseException:
        for fd in fds.values():
            os.close(fd)
        raise
    return fds


def close_all(fds: dict[str, int]) -> None:
    for fd in fds.values():
        os.close(fd)
    fds.clear()


NS_FLAGS = {"mnt": sc.CLONE_NEWNS, "pid": sc.CLONE_NEWPID, "net": sc.CLONE_NEWNET, "ipc": sc.CLONE_NEWIPC,
          "uts": sc.CLONE_NEWUTS, "user": sc.CLONE_NEWUSER, "cgroup": sc.CLONE_NEWCGROUP}


def fork_and_wait(child: Callable[[], int], timeout: float | None = None) -> int:
    """Run child() in a forked process and return its exit code (an errno, 0, or NOT_OURS).

    The child only makes syscalls and exits with os._exit: no locks, no logging, no cleanup
    handlers of the parent run there, so forking from a threaded daemon is safe.  With a
    timeout, a child still running then (stuck on a path through a FUSE server that never
    answers, say) is killed and EINTR returned: a caller's request never holds a thread forever."""
    parent = os.getpid()
    pid = os.fork()
    if pid == 0:
        code = errno.EIO
        try:
            sc.die_with_parent()
            if os.getppid() not in (parent, 0):  # it died before the line above (0: a parent in
                os._exit(errno.EINTR)            # another pid namespace, which cannot be seen)
            os.nice(HELPER_NICE)  # a flood of helpers must not outrun the thread serving /proc reads
            code = child()
        except OSError as e:
            code = e.errno or errno.EIO
        except BaseException:  # noqa: BLE001 - nothing may escape a forked child
            code = errno.EIO
        finally:
            os._exit(code & 0xFF)
    if timeout is not None:
        _wait_exit(pid, timeout)
    while True:
        try:
            _, status = os.waitpid(pid, 0)
            break
        except InterruptedError:
            continue
    code = os.waitstatus_to_exitcode(status)
    return code if code >= 0 else errno.EINTR  # killed by a signal


def _wait_exit(pid: int, timeout: float) -> None:
    """Wait up to timeout for pid to exit (without reaping it); SIGKILL it if it does not."""
    import select
    import signal

    try:
        pfd = os.pidfd_open(pid)
    except OSError:
        return
    try:
        poller = select.poll()
        poller.register(pfd, select.POLLIN)
        if not poller.poll(timeout * 1000):
            os.kill(pid, signal.SIGKILL)
    finally:
        os.close(pfd)


def enter(fds: dict[str, int], order: tuple[str, ...]) -> None:
    """In a forked child: join the namespaces in `order` (user last unless placed otherwise),
    then the root and working directory, if given."""
    for kind in order:
        sc.setns(fds[kind], NS_FLAGS[kind])
    if "root" in fds:
        os.fchdir(fds["root"])
        os.chroot(".")
    if "cwd" in fds:
        os.fchdir(fds["cwd"])


HELPER_TIMEOUT = 10.0  # seconds a helper working in a caller's namespaces may take


def run_in_mount_ns(pid: int, work: Callable[[int], int]) -> int:
    """work(proc_fd) in a forked child inside pid's mount namespace, root and cwd; proc_fd is
    the host's procfs (opened before entering), for the child's own fdinfo and mountinfo.
    Returns work's code (0, an errno, NOT_OURS)."""
    fds = open_ns_fds(pid, ("mnt", "root", "cwd"))
    try:
        fds["proc"] = os.open("/proc", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        proc_fd = fds["proc"]

        def child() -> int:
            enter(fds, ("mnt",))
            return work(proc_fd)

        return fork_and_wait(child, timeout=HELPER_TIMEOUT)
    finally:
        close_all(fds)


def mnt_id(fd: int, proc_fd: int) -> int:
    """The mount id of the object fd refers to, from /proc/self/fdinfo of the host's procfs
    (proc_fd: that procfs, opened before entering another mount namespace)."""
    with open(os.open(f"self/fdinfo/{fd}", os.O_RDONLY | os.O_CLOEXEC, dir_fd=proc_fd)) as f:
        for line in f:
            if line.startswith("mnt_id:"):
                return int(line.split()[1])
    raise OSError(errno.EIO, "no mnt_id in fdinfo")


_OWN_NS: dict[str, int] = {}


def within(fds: dict[str, int], kinds: tuple[str, ...], fn: Callable[[], T]) -> T:
    """fn() with this thread in the namespaces fds[kind] for each kind (net, ipc, uts), then
    back in our own.  For a caller that runs nothing else meanwhile (sysbox-fs's trio thread,
    no await inside): no other request can see the thread's namespaces switched."""
    for kind in kinds:
        if kind not in _OWN_NS:
            _OWN_NS[kind] = os.open(f"/proc/self/ns/{kind}", os.O_RDONLY | os.O_CLOEXEC)
    entered = []
    try:
        for kind in kinds:
            sc.setns(fds[kind], NS_FLAGS[kind])
            entered.append(kind)
        return fn()
    finally:
        for kind in entered:
            sc.setns(_OWN_NS[kind], NS_FLAGS[kind])


def user_ns_ancestors(pid: int, limit: int = 32) -> list[int]:
    """Inode numbers of the parents of pid's user namespace, nearest first, up to the
    initial one (or `limit`: the kernel nests at most 32 deep).  Empty if pid is gone."""
    try:
        fd = os.open(f"/proc/{pid}/ns/user", os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return []
    out: list[int] = []
    try:
        for _ in range(limit):
            parent = fcntl.ioctl(fd, NS_GET_PARENT)  # EPERM at the initial namespace
            os.close(fd)
            fd = parent
            out.append(os.fstat(fd).st_ino)
    except OSError:
        pass
    finally:
        os.close(fd)
    return out
