"""The mount work done for a trapped caller, always in its own mount namespace and root.

When an inner Docker, systemd or a nested container mounts /proc, the kernel would give it
the host's uptime, meminfo and /proc/sys.  We perform that mount for the caller instead: in a
forked child that enters the caller's mount namespace, chroots to the caller's root and
changes to its working directory (so the target path is resolved exactly as the kernel would
resolve it for the caller, never on the host), then forks once more to enter its pid
namespace (procfs shows the mounter's pid namespace), mounts proc and moves clones of the
FUSE nodes onto it.  Masked paths of the container stay masked in the new instance.

The same helper guards the container's immutable mounts (the masks, read-only paths and
sysbox-fs nodes runc and sysbox-runc set up): umount2 in the container's initial mount
namespace is performed here, in the caller's root, and refused with EINVAL for an immutable
mount, as the kernel refuses a locked one.  A lazy umount (MNT_DETACH) acts on the very object
that was checked; a plain one must look the path up again (an fd held on the mount makes it
busy), so a thread racing a symlink swap between the two lookups is the one gap.  Moving one
away, binding its parent without its children, or remounting a read-only one read-write are
refused the same way.

Every function returns 0, an errno, or ns.NOT_OURS ("let the kernel run the call").
"""

from __future__ import annotations

import errno
import os
import re

from sysbox.fs.mounts import MOUNTS
from sysbox.linux import mountinfo, ns
from sysbox.linux import syscalls as sc
from sysbox.linux.fusedev import FSTYPE

_SELF_FD = re.compile(r"^/proc/(?:self|thread-self)/fd/([0-9]{1,9})/?$")
# errnos of a path the helper cannot resolve: the kernel's to refuse, with its own errno
_UNRESOLVED = frozenset({errno.ENOENT, errno.ENOTDIR, errno.ELOOP, errno.EACCES, errno.EBADF})


def decline_unresolved(code: int) -> int:
    """A check whose path did not resolve declines (NOT_OURS): the kernel answers the call."""
    return ns.NOT_OURS if code in _UNRESOLVED else code


def _nodes(mountpoint: str, readonly: bool, clones: list[tuple[int, str]]) -> None:
    """Append detached clones of the FUSE nodes that live under /proc, with their place in a
    procfs, to `clones` (the caller closes them, also when this fails part-way)."""
    for src, dest, _how, needs in MOUNTS:
        if not dest.startswith("/proc/") or (needs and not os.path.exists(needs)):
            continue
        fd = sc.open_tree(os.path.join(mountpoint, src), sc.OPEN_TREE_CLONE | sc.OPEN_TREE_CLOEXEC)
        clones.append((fd, dest[len("/proc/"):]))
        if readonly:
            sc.mount_setattr(fd, attr_set=sc.MOUNT_ATTR_RDONLY)


def _in_mount(target: str, flags: int, data: str, clones: list[tuple[int, str]], masked: list[str]) -> int:
    sc.mount("proc", target, "proc", flags, data)
    if _SELF_FD.match(target):
        # A magic link names the directory under the new mount; its path crosses into it.
        target = os.readlink(target)
    try:
        for fd, rel in clones:
            sc.move_mount(fd, os.path.join(target, rel))
        for rel in masked:
            path = os.path.join(target, rel)
            if os.path.isdir(path):
                sc.mount("tmpfs", path, "tmpfs", sc.MS_RDONLY)
            elif os.path.exists(path):
                sc.mount("/dev/null", path, "", sc.MS_BIND)
    except OSError as e:
        sc.umount2(target, sc.MNT_DETACH)
        return e.errno or errno.EIO
    return 0


def caller_fd_target(pid: int, target: str) -> int | None:
    """`/proc/self/fd/N` (systemd mounts through an O_PATH fd) names an object the caller holds:
    open it through the caller's own fd table, the only host-side open allowed.  Any other
    path, /proc/self/../.. included, is resolved inside the caller's root and namespaces."""
    m = _SELF_FD.match(target)
    if m is None:
        return None
    return os.open(f"/proc/{pid}/fd/{m.group(1)}", os.O_PATH | os.O_CLOEXEC)


def mount_proc(pid: int, target: str, flags: int, data: str, mountpoint: str, masked: list[str]) -> int:
    """Mount proc at `target` as process `pid` sees it; returns 0 or an errno."""
    clones: list[tuple[int, str]] = []
    fds: dict[str, int] = {}
    try:
        try:
            target_fd = caller_fd_target(pid, target)
        except OSError as e:
            return e.errno or errno.ENOENT  # what the kernel says for a bad fd: ENOENT
        if target_fd is not None:
            fds["target"] = target_fd
            target = f"/proc/self/fd/{target_fd}"  # as the grandchild sees it (it inherits the fd)
        _nodes(mountpoint, bool(flags & sc.MS_RDONLY), clones)
        fds.update(ns.open_ns_fds(pid, ("mnt", "pid", "root", "cwd")))

        def child() -> int:
            ns.enter(fds, ("pid", "mnt"))  # pid: for the grandchild below
            return ns.fork_and_wait(lambda: _in_mount(target, flags, data, clones, masked))

        return ns.fork_and_wait(child, timeout=ns.HELPER_TIMEOUT)
    finally:
        for fd, _ in clones:
            os.close(fd)
        ns.close_all(fds)


# -- umount and the immutable mounts --------------------------------------------------------


def _resolve(path: str, nofollow: bool) -> int:
    return os.open(path, os.O_PATH | os.O_CLOEXEC | (os.O_NOFOLLOW if nofollow else 0))


def _in_umount(target: str, flags: int, proc_fd: int, immutable: frozenset[int], initial: bool) -> int:
    fd = _resolve(target, bool(flags & sc.UMOUNT_NOFOLLOW))
    mid = ns.mnt_id(fd, proc_fd)
    if mid in immutable:
        return errno.EINVAL  # as for a locked mount
    children: list[mountinfo.Mount] = []
    if sc.fstatfs_type(fd) == sc.PROC_SUPER_MAGIC:
        mounts = mountinfo.read_at(proc_fd)
        children = [m for m in mounts if m.parent == mid]
        if children and not all(m.fstype == FSTYPE or m.source == "tmpfs" or m.root == "/null" for m in children):
            children = []  # a procfs with mounts of its own: not one we made, the kernel decides
    if not initial and not children:
        return ns.NOT_OURS
    for m in reversed(children):
        sc.umount2(m.point, sc.MNT_DETACH)
    if flags & sc.MNT_DETACH:
        os.fchdir(proc_fd)  # self/fd/N in the host's procfs: exactly the object resolved above
        sc.umount2(f"self/fd/{fd}", flags & ~sc.UMOUNT_NOFOLLOW)
    else:
        # A plain umount fails with EBUSY while our fd pins the mount: drop it and look the
        # path up again, in the caller's root and cwd as the kernel would (see check_mount
        # on what a racing thread could do between the two lookups).
        os.close(fd)
        sc.umount2(target, flags)
    return 0


def umount(pid: int, target: str, flags: int, immutable: frozenset[int], initial: bool) -> int:
    """umount2 for a caller that holds CAP_SYS_ADMIN over its mount namespace."""
    if flags & sc.MNT_FORCE:
        return errno.EPERM  # MNT_FORCE needs CAP_SYS_ADMIN in the initial user namespace
    return ns.run_in_mount_ns(pid, lambda proc_fd: _in_umount(target, flags, proc_fd, immutable, initial))


def check_mount(pid: int, source: str, target: str, flags: int, immutable: frozenset[int],
                readonly: frozenset[int], parents: frozenset[int]) -> int:
    """A bind, move or remount in the container's initial mount namespace: EINVAL/EPERM where
    it would undo an immutable mount, else NOT_OURS (the kernel runs it).  The kernel resolves
    the paths again, so a racing thread could aim elsewhere after this check: the protection
    is against the plain attempt, and umount (the way to uncover a mask) has no such race."""
    def work(proc_fd: int) -> int:
        if flags & sc.MS_REMOUNT:
            mid = ns.mnt_id(_resolve(target, False), proc_fd)
            if mid in readonly and not flags & sc.MS_RDONLY:
                return errno.EPERM
        elif flags & sc.MS_MOVE:
            if ns.mnt_id(_resolve(source, False), proc_fd) in immutable:
                return errno.EINVAL
        elif flags & sc.MS_BIND and not flags & sc.MS_REC and ns.mnt_id(_resolve(source, False), proc_fd) in parents:
            return errno.EINVAL  # would show what its immutable children cover
        return ns.NOT_OURS

    return decline_unresolved(ns.run_in_mount_ns(pid, work))
