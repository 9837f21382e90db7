"""`sysbox cp SRC DST`, with NAME:PATH on one side, as `docker cp` has it.

The VM's side runs as the VM's own root, through `exec tar`: its paths resolve in its own
mount namespace and root, with its own privileges, so nothing is done for it that its kernel
would refuse it, and files copied in land owned by its root.  The host's side packs with
tarfile and unpacks through a filter that trusts nothing in the VM's archive: every member
must stay under the one top entry asked for, no member is written through a symlink, links
point inside, device nodes and set-id bits are dropped.  It needs a running VM.
"""

from __future__ import annotations

import contextlib
import os
import posixpath
import re
import stat
import subprocess
import tarfile
from collections.abc import Callable, Iterator
from typing import IO, Any

from sysbox.devvm import commands, layer
from sysbox.devvm.commands import NAME, Env
from sysbox.errors import SysboxError

_VM_ARG = re.compile(rf"({NAME.pattern}):(.*)", re.DOTALL)


def parse(arg: str) -> tuple[str | None, str]:
    """(VM name or None, path); like docker, a path starting with / or . is always the host's."""
    if not arg.startswith(("/", ".")):
        m = _VM_ARG.fullmatch(arg)
        if m:
            return m.group(1), m.group(2)
    return None, arg


class _Running:
    """A running VM's end: `tar` run through exec, as the VM's root, in its namespaces."""

    def __init__(self, env: Env, meta: dict[str, Any]) -> None:
        self.env, self.meta = env, meta

    def _exec(self, *argv: str) -> list[str]:
        return self.env.runtime() + ["exec", self.meta["id"], *argv]

    def _test(self, *expr: str) -> bool:
        return subprocess.run(self._exec("test", *expr), capture_output=True, stdin=subprocess.DEVNULL,
                              timeout=60, check=False).returncode == 0

    def is_dir(self, path: str) -> bool:
        return self._test("-d", path)

    def exists(self, path: str) -> bool:
        return self._test("-e", path, "-o", "-L", path)  # a dangling symlink is there too

    def unpack(self, into: str, write: Callable[[IO[bytes]], None], label: str) -> None:
        proc = subprocess.Popen(self._exec("tar", "-x", "-f", "-", "-C", into), stdin=subprocess.PIPE,
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        assert proc.stdin is not None and proc.stderr is not None
        try:
            write(proc.stdin)
        except BrokenPipeError:
            pass  # tar in the VM stopped reading: its error says why
        except BaseException:
            proc.kill()
            raise
        finally:
            try:
                proc.stdin.close()
            except BrokenPipeError:
                pass
            err = proc.stderr.read().decode(errors="replace").strip()
            rc = proc.wait(timeout=600)
        _check_tar(rc, err, label)

    def pack(self, parent: str, base: str, read: Callable[[IO[bytes]], None], label: str) -> None:
        proc = subprocess.Popen(self._exec("tar", "-c", "-f", "-", "-C", parent, base), stdin=subprocess.DEVNULL,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        assert proc.stdout is not None and proc.stderr is not None
        try:
            read(proc.stdout)
        finally:
            proc.stdout.close()
            err = proc.stderr.read().decode(errors="replace").strip()
            rc = proc.wait(timeout=600)
        _check_tar(rc, err, label)


def _check_tar(rc: int, err: str, label: str) -> None:
    if rc != 0:
        raise SysboxError(f"{label}: {(err.splitlines() or ['tar failed in the container'])[-1]}")


class _Stopped:
    """A stopped VM's end: its layer, mounted alone (0-based ids: its root's are 0), and a
    child chroot()ed into it that packs or unpacks with tarfile through an unnamed file."""

    def __init__(self, root: str, cdir: str) -> None:
        self.root, self.cdir = root, cdir

    def _holds(self, check: Callable[[str], bool], path: str) -> bool:
        from sysbox.linux import inroot

        return inroot.run_in(self.root, lambda: 0 if check(path) else 1, timeout=60) == 0

    def is_dir(self, path: str) -> bool:
        return self._holds(os.path.isdir, path)

    def exists(self, path: str) -> bool:
        return self._holds(os.path.lexists, path)

    def _scratch(self) -> int:
        return os.open(self.cdir, os.O_TMPFILE | os.O_RDWR | os.O_CLOEXEC, 0o600)  # gone when closed

    def unpack(self, into: str, write: Callable[[IO[bytes]], None], label: str) -> None:
        from sysbox.linux import inroot

        fd = self._scratch()
        try:
            with os.fdopen(os.dup(fd), "wb") as f:
                write(f)

            def child() -> int:
                os.lseek(fd, 0, os.SEEK_SET)
                with os.fdopen(fd, "rb", closefd=False) as f, tarfile.open(fileobj=f, mode="r|") as tar:
                    tar.extractall(into)  # our own archive, unpacked inside the VM's tree
                return 0

            err = inroot.run_in(self.root, child)
        finally:
            os.close(fd)
        if err:
            raise SysboxError(f"{label}: {os.strerror(err)}")

    def pack(self, parent: str, base: str, read: Callable[[IO[bytes]], None], label: str) -> None:
        from sysbox.linux import inroot

        fd = self._scratch()
        try:
            def child() -> int:
                os.chdir(parent)
                with os.fdopen(fd, "wb", closefd=False) as f, tarfile.open(fileobj=f, mode="w|") as tar:
                    tar.add(base)  # symlinks stay symlinks: nothing is followed
                return 0

            err = inroot.run_in(self.root, child)
            if err:
                raise SysboxError(f"{label}: {os.strerror(err)}")
            os.lseek(fd, 0, os.SEEK_SET)
            with os.fdopen(os.dup(fd), "rb") as f:
                read(f)
        finally:
            os.close(fd)


@contextlib.contextmanager
def _vm_end(env: Env, name: str) -> Iterator[_Running | _Stopped]:
    meta = env.store.load(name)
    if commands.status(env, meta) == "running":
        yield _Running(env, meta)
        return
    if not meta.get("layered"):
        raise SysboxError(f"container {name} is not running: sysbox start {name} first")
    with env.store.locked():  # no start, restore or rm while its layer is mounted here
        meta = env.store.load(name)
        if commands.status(env, meta) == "running":
            raise SysboxError(f"container {name} was started meanwhile; try again")
        commands.stop_quiet(env, meta)
        try:
            yield _Stopped(layer.mount(env.store, meta), env.store.cdir(name))
        finally:
            layer.unmount(env.store, meta)


def cp(env: Env, src: str, dst: str) -> None:
    (sname, spath), (dname, dpath) = parse(src), parse(dst)
    if sname and dname:
        raise SysboxError(f"cp {src} {dst}: copying between two containers is not supported")
    if not sname and not dname:
        raise SysboxError(f"cp {src} {dst}: one side must be NAME:PATH")
    vm_path = spath if sname else dpath
    if not vm_path.startswith("/"):
        raise SysboxError(f"{src if sname else dst}: the path in the container must be absolute")
    if dname:
        if not os.path.lexists(spath):
            raise SysboxError(f"cp: {spath}: no such file or directory")
        with _vm_end(env, dname) as end:
            _copy_in(end, dname, spath, dpath, dst)
    else:
        assert sname is not None
        with _vm_end(env, sname) as end:
            _copy_out(end, sname, spath, dpath, src)


def _as_root(ti: tarfile.TarInfo) -> tarfile.TarInfo:
    ti.uid = ti.gid = 0
    ti.uname = ti.gname = "root"
    return ti


def _copy_in(end: _Running | _Stopped, name: str, src: str, dst: str, label: str) -> None:
    vm_dst = posixpath.normpath(dst)
    if end.is_dir(vm_dst):
        into, top = vm_dst, os.path.basename(os.path.abspath(src))
    else:
        into, top = posixpath.dirname(vm_dst), posixpath.basename(vm_dst)
        if not end.is_dir(into):
            raise SysboxError(f"{label}: no directory {into} in container {name}")

    def write(stream: IO[bytes]) -> None:
        try:
            with tarfile.open(fileobj=stream, mode="w|", format=tarfile.PAX_FORMAT) as tar:
                tar.add(src, arcname=top, filter=_as_root)
        except BrokenPipeError:
            raise  # the VM's end stopped reading: its own error says why
        except OSError as e:
            raise SysboxError(f"cp: {e.filename or src}: {e.strerror}") from None

    end.unpack(into, write, label)


def _copy_out(end: _Running | _Stopped, name: str, src: str, dst: str, label: str) -> None:
    vm_src = posixpath.normpath(src)
    if vm_src == "/":
        raise SysboxError(f"{label}: copy a directory under /, not the whole root")
    if not end.exists(vm_src):
        raise SysboxError(f"{label}: no such file or directory in container {name}")
    if os.path.isdir(dst):
        into, top = dst, posixpath.basename(vm_src)
    else:
        into, top = os.path.dirname(os.path.abspath(dst)), os.path.basename(os.path.abspath(dst))
        if not os.path.isdir(into):
            raise SysboxError(f"cp: {into}: no such directory")
    end.pack(posixpath.dirname(vm_src), posixpath.basename(vm_src),
             lambda stream: _extract(stream, posixpath.basename(vm_src), os.path.abspath(into), top, label), label)


def _member_path(name: str, arc_top: str, top: str) -> str | None:
    """The member's path relative to the destination (its top renamed), or None if it is not
    under the top entry or is not a plain relative path."""
    parts = [p for p in name.split("/") if p not in ("", ".")]
    if not parts or parts[0] != arc_top or ".." in parts or name.startswith("/"):
        return None
    return "/".join([top] + parts[1:])


def _no_symlink_on_the_way(root: str, rel: str) -> None:
    """Refuse to write under a symlink: the archive may have made one to point anywhere."""
    cur = root
    for part in rel.split("/")[:-1]:
        cur = os.path.join(cur, part)
        if os.path.islink(cur):
            raise SysboxError(f"cp: {cur}: the archive writes through a symlink; refused")


def _extract(stream: IO[bytes], arc_top: str, into: str, top: str, label: str) -> None:
    made: set[str] = set()
    with tarfile.open(fileobj=stream, mode="r|") as tar:
        for m in tar:
            rel = _member_path(m.name, arc_top, top)
            if rel is None:
                raise SysboxError(f"{label}: the container sent {m.name!r}, outside what was asked; refused")
            _no_symlink_on_the_way(into, rel)
            try:
                if _write_member(tar, m, into, rel, made, arc_top, top, label):
                    made.add(rel)
            except OSError as e:
                raise SysboxError(f"cp: {e.filename or os.path.join(into, rel)}: {e.strerror}") from None


def _write_member(tar: tarfile.TarFile, m: tarfile.TarInfo, into: str, rel: str, made: set[str],
                  arc_top: str, top: str, label: str) -> bool:
    """Write one member; False for what is skipped (device nodes, fifos)."""
    path = os.path.join(into, rel)
    mode = m.mode & 0o777
    if m.isdir():
        if os.path.islink(path):
            raise SysboxError(f"cp: {path}: is a symlink; refused")
        os.makedirs(path, mode=0o700, exist_ok=True)
        os.chmod(path, mode | stat.S_IRWXU)
    elif m.isreg():
        if os.path.islink(path):
            os.unlink(path)
        f = tar.extractfile(m)
        assert f is not None
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        with os.fdopen(fd, "wb") as out:
            while chunk := f.read(1 << 20):
                out.write(chunk)
        os.chmod(path, mode)
    elif m.issym():
        if os.path.lexists(path):
            os.unlink(path)
        os.symlink(m.linkname, path)
    elif m.islnk():
        target = _member_path(m.linkname, arc_top, top)
        if target is None or target not in made:
            raise SysboxError(f"{label}: the container sent a hard link to {m.linkname!r}; refused")
        if os.path.lexists(path):
            os.unlink(path)
        os.link(os.path.join(into, target), path, follow_symlinks=False)
    else:
        return False  # device nodes and fifos are the VM's own business, not the host's
    return True
