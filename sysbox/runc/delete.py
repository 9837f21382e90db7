"""`delete`: let runc delete the container, then undo what create set up."""

from __future__ import annotations

import os
import subprocess

from sysbox.typing_lite import TYPE_CHECKING

if TYPE_CHECKING:
    from typing import Any

from sysbox.runc import state
from sysbox.runc.cli import Invocation
from sysbox.runc.log import log


def cleanup(globals_: dict[str, Any], cdir: str, meta: dict[str, Any]) -> None:  # noqa: C901 - the reverse of create; to become the steps' undo walk (issue 17)
    """Undo a create from its record: rootfs mounts and shifts, manager registration, state dir.

    Each step tolerates having been done already, so an interrupted cleanup can be rerun, and a
    failing step does not stop the others: the manager is told even if an unmount failed.
    """
    errors: list[BaseException] = []
    from sysbox.linux.tree import detach_all

    # sysfs/mqueue we mounted for joined namespaces; the tmpfs of linux.devices nodes
    for path in (meta.get("ns_mounts") or []) + ([meta["devices"]] if meta.get("devices") else []):
        try:
            detach_all(path)
        except Exception as e:  # noqa: BLE001 - reported after the remaining steps ran
            errors.append(e)
    rec = meta.get("rootfs")
    try:
        if meta.get("binds"):
            from sysbox.runc import binds

            binds.teardown(meta["binds"])
    except Exception as e:  # noqa: BLE001 - reported after the remaining steps ran
        errors.append(e)
    try:
        if rec and rec.get("mode"):
            from sysbox.runc import rootfs

            rootfs.teardown(rec)
        elif rec:
            detach_all(rec["target"])
    except Exception as e:  # noqa: BLE001 - reported after the remaining steps ran
        errors.append(e)
    if meta.get("fs"):
        from sysbox.runc import fsnodes

        fsnodes.unregister(globals_, meta["fs"], meta["id"])
    if meta.get("registered") and meta.get("mgr_socket"):
        from sysbox.ipc import IPCError
        from sysbox.mgr.client import Client

        try:
            with Client(meta["mgr_socket"]) as client:
                client.call("unregister", id=meta["id"], keep=bool(meta.get("keep")))
        except IPCError as e:
            if e.code != "not-found":  # the manager's own sweep releases it once runc's state is gone
                log(globals_, "warning", f"could not unregister {meta['id']} from sysbox-mgr: {e}")
    if errors:
        raise errors[0]
    from sysbox.linux.tree import remove_path

    remove_path(cdir)


def delete(inv: Invocation, runtime: str) -> int:
    cid = str(inv.container_id)
    cdir = state.container_dir(inv.globals, cid)
    if not os.path.exists(cdir):  # called without our flags (podman's cleanup): ask runc's record
        cdir = state.recorded_dir(inv.globals, cid) or cdir
    rc = subprocess.call([runtime, *inv.lower_argv()])
    if not state.runc_has(inv.globals, cid) and os.path.exists(cdir):
        cleanup(inv.globals, cdir, state.load_meta(cdir) or {"id": cid})
    return rc
