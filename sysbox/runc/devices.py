"""The create step for `linux.devices`: nodes on a tmpfs of ours, bound in by runc.

See sysbox/linux/devnodes.py for why the host makes them.  The store is recorded in meta
before it is mounted, so delete.cleanup can undo a create that stopped half-way.
"""

from __future__ import annotations

import os

from sysbox.typing_lite import TYPE_CHECKING

if TYPE_CHECKING:
    from typing import Any

from sysbox.errors import SysboxError
from sysbox.runc import state


def make(wanted: list[dict[str, Any]], cdir: str, meta: dict[str, Any], uid: int, gid: int) -> dict[str, str]:
    """{container path: host node} for the devices transform.devices.wanted() checked, made
    and owned as asked."""
    if not wanted:
        return {}
    from sysbox.linux import devnodes

    store = os.path.join(cdir, state.DEVICES_DIR)
    meta["devices"] = store
    state.save_meta(cdir, meta)
    devnodes.mount_store(store)
    nodes = {}
    for i, d in enumerate(wanted):
        node = os.path.join(store, str(i))
        try:
            devnodes.make_node(node, d["kind"], d["major"], d["minor"], d["mode"], uid + d["uid"], gid + d["gid"])
        except OSError as e:
            raise SysboxError(f"linux.devices[{i}]: {d['path']} ({d['kind']} {d['major']}:{d['minor']}): "
                              f"{e.strerror}") from None
        nodes[d["path"]] = node
    return nodes
