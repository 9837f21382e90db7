"""`linux.devices` as binds of nodes we made on the host (sysbox/linux/devnodes.py)."""

from __future__ import annotations

import posixpath

from sysbox.typing_lite import TYPE_CHECKING

if TYPE_CHECKING:
    from typing import Any

from sysbox.runc.transform import TransformError

DEFAULT_MODE = 0o666  # runc's, when the spec gives no fileMode


def wanted(spec: dict[str, Any], size: int) -> list[dict[str, Any]]:
    """The spec's devices as {path, kind, major, minor, mode, uid, gid}, ids as the container
    sees them.  The schema has checked types, the path's leading / and the kinds; this adds
    what it cannot say: a path given once, major:minor for a device, ids below `size` (the
    container's range)."""
    out = []
    seen: set[str] = set()
    for i, d in enumerate(spec.get("linux", {}).get("devices") or []):
        where = f"linux.devices[{i}]"
        path = posixpath.normpath(d["path"])
        if path in seen:
            raise TransformError(f"{where}.path: {path} is listed twice")
        seen.add(path)
        kind = d["type"]
        for key in ("major", "minor"):
            if kind != "p" and key not in d:
                raise TransformError(f"{where}.{key}: required for a {kind} device")
            if d.get(key, 0) < 0:
                raise TransformError(f"{where}.{key}: {d[key]} is below 0")
        for key in ("uid", "gid"):
            if d.get(key, 0) >= size:
                raise TransformError(f"{where}.{key}: {d[key]} is outside the container's {size} ids")
        out.append({"path": path, "kind": kind, "major": d.get("major", 0), "minor": d.get("minor", 0),
                    "mode": d.get("fileMode", DEFAULT_MODE) & 0o7777, "uid": d.get("uid", 0), "gid": d.get("gid", 0)})
    return out


def bind_nodes(spec: dict[str, Any], nodes: dict[str, str]) -> dict[str, Any]:
    """The spec with its devices replaced by binds of `nodes` ({container path: host node}),
    placed after every other mount (so after the /dev tmpfs)."""
    if not nodes:
        return spec
    spec["linux"]["devices"] = [d for d in spec["linux"].get("devices") or []
                                if posixpath.normpath(d.get("path", "")) not in nodes]
    for path, node in nodes.items():
        spec.setdefault("mounts", []).append({"destination": path, "type": "bind", "source": node,
                                              "options": ["bind"]})
    return spec
