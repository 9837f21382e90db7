"""`sysbox cp SRC DST`, with NAME:PATH on one side, as `docker cp` has it.

The VM's side runs as the VM's own root, through `exec tar`: its paths resolve in its own
mount namespace and root, with its own privileges, so nothing is done for it that its kernel
would refuse it, and files copied in land owned by its root.  The host's side packs with
tarfile and unpacks through a filter that trusts nothing in the VM's archive: every member
must stay under the one top entry asked for, no member is written through a symlink, links
point inside, device nodes and set-id bits are dropped.  It needs a running VM.
"""

from __future__ import annotations

import os
import posixpath
import re
import stat
import subprocess
import tarfile
from typing import IO, Any

from sysbox.devvm import commands
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


def _running(env: Env, name: str) -> dict[str, Any]:
    meta = env.store.load(name)
    if commands.status(env, meta) != "running":
        raise SysboxError(f"container {name} is not running: sysbox start {name} first")
    return meta


def _vm_test(env: Env, meta: dict[str, Any], flag: str, path: str) -> bool:
    out = subprocess.run(env.runtime() + ["exec", meta["id"], "test", flag, path], capture_output=True,
                         stdin=subprocess.DEVNULL, timeout=60, check=False)
    return out.returncode == 0


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
        _copy_in(env, _running(env, dname), spath, dpath, dst)
    else:
        assert sname is not None
        _copy_out(env, _running(env, sname), spath, dpath, src)


def _as_root(ti: tarfile.TarInfo) -> tarfile.TarInfo:
    ti.uid = ti.gid = 0
    ti.uname = ti.gname = "root"
    return ti


def _copy_in(env: Env, meta: dict[str, Any], src: str, dst: str, label: str) -> None:
    if not os.path.lexists(src):
        raise SysboxError(f"cp: {src}: no such file or directory")
    vm_dst = posixpath.normpath(dst)
    if _vm_test(env, meta, "-d", vm_dst):
        into, top = vm_dst, os.path.basename(os.path.abspath(src))
    else:
        into, top = posixpath.dirname(vm_dst), posixpath.basename(vm_dst)
        if not _vm_test(env, meta, "-d", into):
            raise SysboxError(f"{label}: no directory {into} in container {meta['name']}")
    proc = subprocess.Popen(env.runtime() + ["exec", meta["id"], "tar", "-x", "-f", "-", "-C", into],
                            stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    assert proc.stdin is not None and proc.stderr is not None
    failed: OSError | None = None
    try:
        with tarfile.open(fileobj=proc.stdin, mode="w|", format=tarfile.PAX_FORMAT) as tar:
            tar.add(src, arcname=top, filter=_as_root)
    except BrokenPipeError:
        pass  # tar in the VM stopped reading: its error says why
    except OSError as e:
        failed = e
        proc.kill()
    finally:
        try:
            proc.stdin.close()
        except BrokenPipeError:
            pass
    err = proc.stderr.read().decode(errors="replace").strip()
    rc = proc.wait(timeout=600)
    if failed is not None:
        raise SysboxError(f"cp: {failed.filename or src}: {failed.strerror}")
    if rc != 0:
        raise SysboxError(f"{label}: {(err.splitlines() or ['tar failed in the container'])[-1]}")


def _copy_out(env: Env, meta: dict[str, Any], src: str, dst: str, label: str) -> None:
    vm_src = posixpath.normpath(src)
    if vm_src == "/":
        raise SysboxError(f"{label}: copy a directory under /, not the whole root")
    if not (_vm_test(env, meta, "-e", vm_src) or _vm_test(env, meta, "-L", vm_src)):
        raise SysboxError(f"{label}: no such file or directory in container {meta['name']}")
    if os.path.isdir(dst):
        into, top = dst, posixpath.basename(vm_src)
    else:
        into, top = os.path.dirname(os.path.abspath(dst)), os.path.basename(os.path.abspath(dst))
        if not os.path.isdir(into):
            raise SysboxError(f"cp: {into}: no such directory")
    proc = subprocess.Popen(env.runtime() + ["exec", meta["id"], "tar", "-c", "-f", "-", "-C",
                                             posixpath.dirname(vm_src), posixpath.basename(vm_src)],
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stdout is not None and proc.stderr is not None
    try:
        _extract(proc.stdout, posixpath.basename(vm_src), os.path.abspath(into), top, label)
    finally:
        proc.stdout.close()
        err = proc.stderr.read().decode(errors="replace").strip()
        rc = proc.wait(timeout=600)
    if rc != 0:
        raise SysboxError(f"{label}: {(err.splitlines() or ['tar failed in the container'])[-1]}")


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
