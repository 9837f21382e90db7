"""Pure transformations of an OCI spec into a system container's spec.

Each module handles one concern and never touches the host: it takes the spec (a dict) and
the facts gathered beforehand (a Context), and returns a new spec or raises TransformError
naming the field.  `check()` runs every refusal before anything is allocated, so a refused
spec leaves nothing behind.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

from sysbox.errors import SysboxError


class TransformError(SysboxError):
    """The spec cannot become a system container; str() names the field."""


@dataclass(frozen=True)
class Context:
    """Facts about the host and this container, gathered by the caller."""

    uid: int
    gid: int
    size: int
    rootfs: str
    bundle: str = "/"
    cap_last_cap: int = 40
    special_dirs: list[dict[str, str]] = field(default_factory=list)
    fs_nodes: list[dict[str, Any]] = field(default_factory=list)
    trap_socket: str | None = None      # sysbox-fs's seccomp listener: mount(2) is trapped there


def check(spec: dict[str, Any]) -> None:
    from sysbox.runc.transform import namespaces, privileges

    namespaces.check(spec)
    privileges.check(spec)


def apply(spec: dict[str, Any], ctx: Context) -> dict[str, Any]:
    """The system-container spec for `spec` (which is not modified)."""
    from sysbox.runc.transform import caps, mounts, namespaces, paths, seccomp

    check(spec)
    out = copy.deepcopy(spec)
    out = namespaces.apply(out, ctx)
    out = caps.apply(out, ctx)
    out = mounts.apply(out, ctx)
    out = paths.apply(out)
    out = seccomp.apply(out, ctx.trap_socket)
    out.setdefault("annotations", {})["io.sysbox.uid-range"] = f"{ctx.uid}:{ctx.size}"
    return out
