"""Presenting the image's rootfs to the container with ownership shifted into its id range.

Three ways, chosen per rootfs, recorded in the container's meta.json so delete undoes exactly
what create did:

- idmap: a plain directory (ext4, xfs, btrfs, tmpfs >= 6.3) is idmapped-mounted at our target;
  nothing on disk changes.
- overlay: an overlayfs mount (Docker's overlay2 `merged`, containerd's snapshot mounted at
  bundle/rootfs) cannot itself be idmapped (EINVAL).  We rebuild it from idmapped lower layers
  and the real upper dir, shifted by chown (it holds only the container's own changes), with a
  fresh workdir; the original mount point gets a bind of the new overlay so Docker still sees
  the container's files there.  On delete the upper is shifted back and the original overlay
  is mounted again, so `docker diff/cp/commit` see ordinary 0-based ids.
- chown: where idmapping fails (or is asked for), the tree is shifted by chown and bound at
  our target; delete shifts it back.
"""

from __future__ import annotations

import os

from sysbox.typing_lite import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any
    Log = Callable[[str], None]
    Note = Callable[[dict[str, Any]], None]

from sysbox.errors import SysboxError
from sysbox.linux import mountinfo, shift
from sysbox.linux import syscalls as sc
from sysbox.linux.tree import detach_all, remove_path


def _nolog(msg: str) -> None:
    pass


def _nonote(rec: dict[str, Any]) -> None:
    pass


def prepare(rootfs: str, target: str, workspace: str, uid: int, gid: int, size: int,
            mode: str = "auto", log: Log = _nolog, note: Note = _nonote) -> dict[str, Any]:
    """Mount the container's view of `rootfs` at `target`; returns the teardown record.

    `note(rec)` is called with the record as it grows, before each change it describes, so a
    process killed half-way leaves a record teardown() can finish from (every flag is safe to
    act on when its change did not happen: unshifting skips ids outside the range, unmounting
    what is not mounted is a no-op)."""
    rootfs = os.path.realpath(rootfs)
    rec: dict[str, Any] = {"rootfs": rootfs, "target": target, "uid": uid, "gid": gid, "size": size}
    m = mountinfo.at(rootfs)
    if m is not None and m.fstype == "overlay" and m.root == "/":
        if mode == "chown":
            raise SysboxError(f"root.path: {rootfs} is an overlay mount; chown shifting would rewrite "
                              "its shared lower layers (use idmapped mounts)")
        return _overlay(m, rec, workspace, log, note)
    if mode in ("auto", "idmap"):
        from sysbox.linux import idmap  # not on delete's path

        try:
            idmap.mount_idmapped(rootfs, target, uid, gid, size, recursive=True)
            return {**rec, "mode": "idmap"}
        except OSError as e:
            if mode == "idmap":
                raise SysboxError(f"root.path: cannot idmap {rootfs}: {e.strerror}") from None
            fstype = m.fstype if m else "its filesystem"
            log(f"idmapped mount of {rootfs} failed ({e.strerror}, {fstype}); shifting ownership with chown")
    rec["mode"] = "chown"
    note(rec)
    n = shift.shift_tree(rootfs, uid, gid, size)
    log(f"shifted {n} entries of {rootfs} by chown to uid {uid} gid {gid}")
    try:
        sc.mount(rootfs, target, "", sc.MS_BIND | sc.MS_REC)
    except OSError:
        shift.unshift_tree(rootfs, uid, gid, size)
        raise
    return rec


def _resolve_layers(m: mountinfo.Mount) -> tuple[list[str], str]:
    """Absolute lower layer paths, and the directory relative ones were given against."""
    upper = m.super_option("upperdir")
    base = os.path.dirname(os.path.dirname(upper.rstrip("/"))) if upper else "/"
    lowers = []
    for p in (m.super_option("lowerdir") or "").split(":"):
        if p:
            lowers.append(os.path.realpath(p if os.path.isabs(p) else os.path.join(base, p)))
    return lowers, base


def _mount_relative(cwd: str, target: str, data: str) -> None:
    """mount(2) an overlay whose layer paths are relative to `cwd`, as Docker does to stay under
    the one-page limit on mount data with many layers."""
    old = os.open(".", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.chdir(cwd)
        sc.mount("overlay", target, "overlay", 0, data)
    finally:
        os.fchdir(old)
        os.close(old)


def _overlay(m: mountinfo.Mount, rec: dict[str, Any], workspace: str, log: Log, note: Note) -> dict[str, Any]:
    uid, gid, size, point = rec["uid"], rec["gid"], rec["size"], rec["rootfs"]
    lowers, base = _resolve_layers(m)
    upper, work = m.super_option("upperdir"), m.super_option("workdir")
    layers = os.path.join(workspace, "lower")
    os.makedirs(layers, mode=0o700, exist_ok=True)
    rec.update(mode="overlay", point=point, upper=upper, orig_base=base, layers=layers,
               orig_data=",".join(o for o in m.super_options.split(",") if o not in ("rw", "ro")))
    note(rec)
    attached: list[str] = []
    from sysbox.linux import idmap

    try:
        for i, layer in enumerate(lowers):
            at = os.path.join(layers, str(i))
            os.makedirs(at, exist_ok=True)
            idmap.mount_idmapped(layer, at, uid, gid, size)
            attached.append(at)
        data = "lowerdir=" + ":".join(str(i) for i in range(len(lowers)))
        if upper and work:
            newwork = work.rstrip("/") + "-sysbox"
            rec["work"] = newwork
            note(rec)
            remove_path(newwork)
            os.mkdir(newwork, 0o700)
            rec["upper_shifted"] = True
            note(rec)
            shift.shift_tree(upper, uid, gid, size)
            data += f",upperdir={upper},workdir={newwork}"
            rec["orig_unmounted"] = True
            note(rec)
            sc.umount2(point, sc.MNT_DETACH)  # the upper dir may serve one overlay at a time
        _mount_relative(layers, rec["target"], data)
        rec["point_bound"] = True
        note(rec)
        sc.mount(rec["target"], point, "", sc.MS_BIND)
    except BaseException:
        for at in attached:
            sc.umount2(at, sc.MNT_DETACH)
        teardown(rec)
        raise
    for at in attached:  # overlayfs holds private clones of its layers: the attachments can go
        sc.umount2(at, sc.MNT_DETACH)
        os.rmdir(at)
    log(f"rootfs {point}: overlay rebuilt on {len(lowers)} idmapped lower layers, upper shifted to uid {uid}")
    return rec


def _clear_volatile_mark(base: str, data: str) -> None:
    """A `volatile` overlay (podman mounts them) leaves work/incompat/volatile behind, and the
    kernel refuses (EINVAL) to mount that workdir again, since after a crash the upper may be
    torn.  We unmounted it ourselves, cleanly, so the mark can go, as containers/storage does."""
    opts = data.split(",")
    if "volatile" not in opts and "fsync=volatile" not in opts:
        return
    work = next((o[len("workdir="):] for o in opts if o.startswith("workdir=")), None)
    if work:
        remove_path(os.path.join(base, work, "work", "incompat", "volatile"))


def _umount(path: str) -> None:
    try:
        sc.umount2(path, sc.MNT_DETACH)
    except OSError as e:
        if e.errno not in (22, 2):  # EINVAL: not mounted; ENOENT: gone
            raise


def _mounted_at(path: str) -> bool:
    return mountinfo.at(path) is not None


def _detach_layers(layers: str | None) -> None:
    """The idmapped lower layers prepare() attaches and detaches again, left mounted only by a
    process killed in between.  Only our own numbered entries are looked at."""
    if not layers or not os.path.isdir(layers):
        return
    for name in os.listdir(layers):
        if name.isdigit():
            at = os.path.join(layers, name)
            detach_all(at)
            remove_path(at)


def teardown(rec: dict[str, Any]) -> None:
    """Undo prepare(); safe to call twice and on a partial record."""
    mode = rec.get("mode")
    target = rec["target"]
    if mode == "overlay":
        point = rec["point"]
        if rec.get("point_bound"):
            _umount(point)
        detach_all(target)
        _detach_layers(rec.get("layers"))
        if rec.get("upper_shifted"):
            shift.unshift_tree(rec["upper"], rec["uid"], rec["gid"], rec["size"])
        if rec.get("work"):
            remove_path(rec["work"])
        if rec.get("orig_unmounted") and not _mounted_at(point):
            data = mountinfo.unescape(rec["orig_data"])
            _clear_volatile_mark(rec["orig_base"], data)
            _mount_relative(rec["orig_base"], point, data)
        return
    detach_all(target)
    if mode == "chown":
        shift.unshift_tree(rec["rootfs"], rec["uid"], rec["gid"], rec["size"])
