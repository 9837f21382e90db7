"""Pure transformations of an OCI spec into a system container's spec.

Each module handles one concern and never touches the host: it takes the spec (a dict) and
the facts gathered beforehand (a Context), and returns a new spec or raises TransformError
naming the field.  `check()` runs every refusal before anything is allocated, so a refused
spec leaves nothing behind.
"""

from __future__ import annotations

from sysbox.typing_lite import TYPE_CHECKING

if TYPE_CHECKING:
    from typing import Any

from sysbox import jsonfast as json
from sysbox.errors import SysboxError


class TransformError(SysboxError):
    """The spec cannot become a system container; str() names the field."""


class Context:
    """Facts about the host and this container, gathered by the caller.

    uid, gid, size: the container's id range; bundle: the caller's bundle dir (bundle_copy: the
    rewritten one runc is given, for the hooks' state); special_dirs:
    host-backed dirs from the manager; fs_nodes: sysbox-fs's bind mounts; trap_socket:
    sysbox-fs's seccomp listener, where mount(2) is trapped; ns_mounts: {destination: host
    path} of sysfs/mqueue mounted by the host for namespaces the container joins
    (linux/nsmount.py); oom_floor: the lowest process.oomScoreAdj runc can set here (None:
    any); honor_caps: keep the spec's capabilities for root too (transform/caps.py).  A plain
    class: namedtuple's collections import costs create ~5 ms, dataclasses ~12 ms (inspect)."""

    __slots__ = ("bundle", "bundle_copy", "cap_last_cap", "fs_nodes", "gid", "honor_caps", "ns_mounts", "oom_floor",
                 "size", "special_dirs", "trap_socket", "uid")

    def __init__(self, uid: int, gid: int, size: int, bundle: str = "/", cap_last_cap: int = 40,
                 special_dirs: Any = (), fs_nodes: Any = (), trap_socket: str | None = None,
                 ns_mounts: dict[str, str] | None = None, oom_floor: int | None = None,
                 honor_caps: bool = False, bundle_copy: str = "") -> None:
        self.uid, self.gid, self.size, self.bundle, self.cap_last_cap = uid, gid, size, bundle, cap_last_cap
        self.special_dirs, self.fs_nodes, self.trap_socket = special_dirs, fs_nodes, trap_socket
        self.ns_mounts, self.oom_floor, self.honor_caps = ns_mounts, oom_floor, honor_caps
        self.bundle_copy = bundle_copy

    def _replace(self, **changes: Any) -> Context:
        """A copy with some facts changed (as namedtuple's, which this was)."""
        return Context(**{**{name: getattr(self, name) for name in self.__slots__}, **changes})


def check(spec: dict[str, Any]) -> None:
    from sysbox.runc.transform import namespaces, privileges

    namespaces.check(spec)
    privileges.check(spec)


def apply(spec: dict[str, Any], ctx: Context) -> dict[str, Any]:
    """The system-container spec for `spec` (which is not modified)."""
    from sysbox.runc.transform import caps, mounts, namespaces, paths, privileges, seccomp

    check(spec)
    out = json.loads(json.dumps(spec))  # a deep copy at C speed, without importing copy (~2 ms)
    out = namespaces.apply(out, ctx)
    out = caps.apply(out, ctx)
    out = privileges.apply(out, ctx)
    out = mounts.apply(out, ctx)
    out = paths.apply(out)
    out = seccomp.apply(out, ctx.trap_socket)
    if out.get("hooks"):
        from sysbox.runc.transform import hooks

        out = hooks.apply(out, ctx.bundle, ctx.bundle_copy)
    return out
