"""`linux.devices` as binds of nodes we made on the host (sysbox/linux/devnodes.py)."""

from __future__ import annotations

import posixpath

from sysbox.typing_lite import TYPE_CHECKING

if TYPE_CHECKING:
    from typing import Any

from sysbox.runc.transform import TransformError

DEFAULT_MODE = 0o666  # runc's, when the spec gives no fileMode


def wanted(spec: dict[str, Any], size: int) -> list[dict[str, Any]]:
    """The spec's devices, checked: each as {path, kind, major, minor, mode, uid, gid} with ids
    as the container sees them (below `size`, the container's range)."""
    out = []
    seen: set[str] = set()
    for i, d in enumerate(spec.get("linux", {}).get("devices") or []):
        where = f"linux.devices[{i}]"
        path = d.get("path")
        if not isinstance(path, str) or not path.startswith("/") or posixpath.normpath(path) == "/":
            raise TransformError(f"{where}.path: an absolute path is required, not {path!r}")
        path = posixpath.normpath(path)
        if path in seen:
            raise TransformError(f"{where}.path: {path} is listed twice")
        seen.add(path)
        kind = d.get("type")
        if kind not in ("c", "u", "b", "p"):
            raise TransformError(f"{where}.type: {kind!r} is not one of c, u, b, p")
        ids = {}
        for key in ("major", "minor", "uid", "gid"):
            value = d.get(key, 0)
            if kind != "p" and key in ("major", "minor") and key not in d:
                raise TransformError(f"{where}.{key}: required for a {kind} device")
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise TransformError(f"{where}.{key}: {value!r} is not a non-negative integer")
            if key in ("uid", "gid") and value >= size:
                raise TransformError(f"{where}.{key}: {value} is outside the container's {size} ids")
            ids[key] = value
        mode = d.get("fileMode", DEFAULT_MODE)
        if not isinstance(mode, int) or isinstance(mode, bool) or mode < 0:
            raise TransformError(f"{where}.fileMode: {mode!r} is not a file mode")
        out.append({"path": path, "kind": kind, "mode": mode & 0o7777, **ids})
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
