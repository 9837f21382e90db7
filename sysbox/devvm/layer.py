"""A VM's own layer: an overlay of its upper dir on the image's shared, unpacked rootfs.

The overlay is mounted at bundle/rootfs while the VM runs (and briefly for `cp`-free
provisioning at `run`); sysbox-runc then finds an overlay there and rebuilds it over an
idmapped view of the shared rootfs with the upper shifted into the VM's id range, exactly as
for Docker's overlay2.  So the image is unpacked once, a VM costs only what it writes, and
removing a VM removes only its directory.  The upper holds 0-based ids whenever the VM is
not running; meta["shifted"] records the range while it may not be (see unshift_if_stale).
"""

from __future__ import annotations

import os
import subprocess
from typing import Any

from sysbox.devvm.store import Store
from sysbox.errors import SysboxError


def paths(store: Store, meta: dict[str, Any]) -> tuple[str, str, str, str]:
    """(lower, upper, work, mountpoint) of a VM."""
    cdir = store.cdir(meta["name"])
    return (os.path.join(store.layer(meta["tag"]), "rootfs"), os.path.join(cdir, "layer", "upper"),
            os.path.join(cdir, "layer", "work"), os.path.join(cdir, "bundle", "rootfs"))


def create(store: Store, meta: dict[str, Any], upper_from: str | None = None,
           shifted: list[int] | None = None) -> None:
    """The VM's empty layer (or a copy of upper_from: a snapshot, or another VM's layer).

    The upper's top directory is the VM's "/": it takes the image root's mode and owner.  The
    layer dir around it is host-root-only; only bundle/rootfs must be reachable by the VM's
    root (runc binds it onto itself from inside the user namespace)."""
    lower, upper, work, point = paths(store, meta)
    os.makedirs(os.path.dirname(upper), mode=0o700, exist_ok=True)
    os.makedirs(point, mode=0o755, exist_ok=True)
    if upper_from:
        copy_tree(upper_from, upper, shifted)
    else:
        os.mkdir(upper)
        st = os.stat(lower)
        os.chown(upper, st.st_uid, st.st_gid)
        os.chmod(upper, st.st_mode & 0o7777)
    os.mkdir(work, 0o700)


def mount(store: Store, meta: dict[str, Any]) -> str:
    """Mount the VM's overlay at bundle/rootfs (if it is not already); returns the mountpoint."""
    from sysbox.linux import mountinfo
    from sysbox.linux import syscalls as sc

    lower, upper, work, point = paths(store, meta)
    if mountinfo.at(point) is not None:
        return point
    for p in (lower, upper, work):
        if any(c in p for c in ",:\\"):
            raise SysboxError(f"--store {store.root}: overlay layer paths cannot hold ',', ':' or '\\\\'")
    if not os.path.isdir(lower):
        raise SysboxError(f"container {meta['name']}: its image {meta['image']} is no longer in the store")
    try:
        sc.mount("overlay", point, "overlay", 0, f"lowerdir={lower},upperdir={upper},workdir={work}")
    except OSError as e:
        raise SysboxError(f"container {meta['name']}: mounting its layer on {point}: {e.strerror}") from None
    return point


def unmount(store: Store, meta: dict[str, Any]) -> None:
    """Detach whatever is mounted at bundle/rootfs (sysbox-runc's delete leaves the plain
    overlay there again)."""
    from sysbox.linux.tree import detach_all

    detach_all(paths(store, meta)[3])


def unshift_if_stale(store: Store, meta: dict[str, Any]) -> None:
    """After a host crash the upper may still carry the range of a run that never reached
    sysbox-runc's delete: bring it back to 0-based ids before it is mounted again."""
    shifted = meta.get("shifted")
    if shifted:
        from sysbox.linux import shift

        shift.unshift_tree(paths(store, meta)[1], *shifted)
        meta["shifted"] = None
        store.save(meta)


def copy_tree(src: str, dst: str, shifted: list[int] | None = None) -> None:
    """Copy an upper dir (whiteouts, overlay xattrs, owners and all) to a new dst; ids of a
    running VM's upper are brought back to 0-based in the copy."""
    if os.path.lexists(dst):
        raise SysboxError(f"{dst} already exists")
    out = subprocess.run(["cp", "-a", "--reflink=auto", src, dst], capture_output=True, text=True, check=False)
    if out.returncode != 0:
        from sysbox.linux.tree import remove_path

        remove_path(dst)
        raise SysboxError(f"copying {src}: {(out.stderr.strip().splitlines() or ['cp failed'])[-1]}")
    if shifted:
        from sysbox.linux import shift

        shift.unshift_tree(dst, *shifted)
