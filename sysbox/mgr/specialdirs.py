"""Host-backed special dirs (/var/lib/docker, ...) for each container.

They live at <data-root>/<kind>/<container-id>, owned by the container's mapped root, and are
bind-mounted over the container's path so an inner dockerd or containerd gets a real
filesystem instead of overlay-on-overlay.

Everything inside a special dir, and everything under a container's rootfs, is controlled by
the container.  So every walk here is done with directory fds and O_NOFOLLOW: a symlink
planted inside is copied or deleted as a symlink, never followed to a host path.
"""

from __future__ import annotations

import errno
import logging
import os
import stat

from sysbox.linux.tree import BusyError, remove_path
from sysbox.mgr.protocol import SPECIAL_DIRS

log = logging.getLogger("sysbox-mgr")

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
# Docker and containerd keep private data; Sysbox uses 0700 for them too.
_MODES = {"docker": 0o700, "containerd": 0o700, "containers": 0o700}


__all__ = ["BusyError", "ensure", "host_path", "on_disk", "remove", "remove_path"]


def host_path(data_root: str, kind: str, cid: str) -> str:
    return os.path.join(data_root, kind, cid)


def _open_beneath(root: str, rel: str) -> int | None:
    """Open rootfs/rel as a directory without following any symlink on the way; None if absent."""
    fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    for part in [p for p in rel.split("/") if p]:
        try:
            nfd = os.open(part, _DIR_FLAGS, dir_fd=fd)
        except OSError:  # ENOENT, ENOTDIR (a file or a symlink), ELOOP
            os.close(fd)
            return None
        os.close(fd)
        fd = nfd
    return fd


class _Shifter:
    def __init__(self, uid: int, gid: int, size: int) -> None:
        self.uid, self.gid, self.size = uid, gid, size
        self.skipped = 0
        self.files = 0

    def ids(self, st: os.stat_result) -> tuple[int, int]:
        nobody = min(65534, self.size - 1)
        u = st.st_uid if st.st_uid < self.size else nobody
        g = st.st_gid if st.st_gid < self.size else nobody
        return self.uid + u, self.gid + g


def _copy_file(src: int, dst: int, length: int) -> None:
    while length > 0:
        try:
            n = os.copy_file_range(src, dst, length)
        except OSError:
            n = os.sendfile(dst, src, None, length)
        if n == 0:
            break
        length -= n


MAX_COPY_DEPTH = 256  # directory levels copied from an image into a special dir


class TooDeep(OSError):
    """The image's tree under a special dir is deeper than MAX_COPY_DEPTH."""


def _copy_entry(entry: os.DirEntry, src_fd: int, dst_fd: int, sh: _Shifter) -> tuple[int, int] | None:
    """Copy one non-directory entry, or create a directory and return (src, dst) fds for it."""
    name = entry.name
    st = entry.stat(follow_symlinks=False)
    uid, gid = sh.ids(st)
    if stat.S_ISDIR(st.st_mode):
        os.mkdir(name, 0o700, dir_fd=dst_fd)
        s = os.open(name, _DIR_FLAGS, dir_fd=src_fd)
        try:
            d = os.open(name, _DIR_FLAGS, dir_fd=dst_fd)
        except BaseException:
            os.close(s)
            raise
        return s, d
    if stat.S_ISREG(st.st_mode):
        s = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=src_fd)
        try:
            d = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600,
                        dir_fd=dst_fd)
            try:
                _copy_file(s, d, st.st_size)
                os.fchown(d, uid, gid)
                os.fchmod(d, stat.S_IMODE(st.st_mode))  # after chown, which clears setuid/setgid
                os.utime(d, ns=(st.st_atime_ns, st.st_mtime_ns))
            finally:
                os.close(d)
        finally:
            os.close(s)
        sh.files += 1
    elif stat.S_ISLNK(st.st_mode):
        os.symlink(os.readlink(name, dir_fd=src_fd), name, dir_fd=dst_fd)
        os.chown(name, uid, gid, dir_fd=dst_fd, follow_symlinks=False)
    else:  # devices, fifos, sockets: not copied (as rsync --no-devices)
        sh.skipped += 1
    return None


def _copy_tree(src_fd: int, dst_fd: int, sh: _Shifter) -> None:
    """Copy the contents of one directory into another, shifting ownership into the range.
    Iterative, at most MAX_COPY_DEPTH levels deep (two fds a level): the image's tree is not
    ours to trust, and a deeper one fails this container's special dir, nothing else."""
    # frames: (src fd, dst fd, entries left, the dir's lstat for its final owner/mode/times)
    stack: list[tuple[int, int, list[os.DirEntry], os.stat_result | None]] = []
    try:
        with os.scandir(src_fd) as it:
            stack.append((src_fd, dst_fd, list(it), None))
        while stack:
            s, d, entries, st = stack[-1]
            if not entries:
                if st is not None:  # a finished subdirectory: its owner, mode and times last
                    uid, gid = sh.ids(st)
                    os.fchown(d, uid, gid)
                    os.fchmod(d, stat.S_IMODE(st.st_mode))
                    os.utime(d, ns=(st.st_atime_ns, st.st_mtime_ns))
                    os.close(s)
                    os.close(d)
                stack.pop()  # only once closed: a failure above leaves it to the finally below
                continue
            entry = entries.pop()
            sub = _copy_entry(entry, s, d, sh)
            if sub is None:
                continue
            if len(stack) > MAX_COPY_DEPTH:
                os.close(sub[0])
                os.close(sub[1])
                raise TooDeep(errno.ELOOP, f"more than {MAX_COPY_DEPTH} directory levels")
            est = entry.stat(follow_symlinks=False)
            try:
                with os.scandir(sub[0]) as it:
                    stack.append((sub[0], sub[1], list(it), est))
            except BaseException:
                os.close(sub[0])
                os.close(sub[1])
                raise
    finally:
        for s, d, _entries, st in stack:
            if st is not None:
                os.close(s)
                os.close(d)


def ensure(data_root: str, kind: str, cid: str, uid: int, gid: int, size: int, rootfs: str) -> tuple[str, bool]:
    """Create the special dir if missing (copying in the image's content); (path, created)."""
    parent = os.path.join(data_root, kind)
    os.makedirs(parent, mode=0o711, exist_ok=True)
    path = host_path(data_root, kind, cid)
    if os.path.isdir(path) and not os.path.islink(path):
        return path, False
    if os.path.lexists(path):
        os.unlink(path)  # something that is not a directory took its place
    tmp = os.path.join(parent, f".{cid}.new")
    if os.path.lexists(tmp):
        remove_path(tmp)
    os.mkdir(tmp, 0o700)
    try:
        dfd = os.open(tmp, _DIR_FLAGS)
        try:
            sfd = _open_beneath(rootfs, SPECIAL_DIRS[kind])
            sh = _Shifter(uid, gid, size)
            if sfd is not None:
                try:
                    _copy_tree(sfd, dfd, sh)
                finally:
                    os.close(sfd)
                if sh.files or sh.skipped:
                    log.info("copied %d files of %s%s into %s (%d special files skipped)", sh.files,
                             rootfs, SPECIAL_DIRS[kind], path, sh.skipped)
            os.fchown(dfd, uid, gid)
            os.fchmod(dfd, _MODES.get(kind, 0o755))
        finally:
            os.close(dfd)
        os.rename(tmp, path)
    except BaseException:
        remove_path(tmp)
        raise
    return path, True


def remove(data_root: str, kind: str, cid: str) -> None:
    remove_path(host_path(data_root, kind, cid))


def on_disk(data_root: str) -> list[tuple[str, str]]:
    """(kind, name) of every entry under <data-root>/<kind>/, for the orphan sweep."""
    out: list[tuple[str, str]] = []
    for kind in SPECIAL_DIRS:
        try:
            names = os.listdir(os.path.join(data_root, kind))
        except FileNotFoundError:
            continue
        out.extend((kind, n) for n in names)
    return out
