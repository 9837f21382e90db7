"""Namespaces and id mappings: a private user namespace is what makes root inside safe."""

from __future__ import annotations

import itertools

from sysbox.typing_lite import TYPE_CHECKING

if TYPE_CHECKING:
    from typing import Any

from sysbox.runc.transform import Context, TransformError

# Sharing any of these with the host would let the container see or touch host state.
REQUIRED = {"pid": "--pid=host", "ipc": "--ipc=host", "uts": "--uts=host", "mount": "a shared mount namespace",
            "network": "--net=host"}
MIN_SIZE = 65536


def _namespaces(spec: dict[str, Any]) -> list[dict[str, Any]]:
    return spec.get("linux", {}).get("namespaces", [])


def check(spec: dict[str, Any]) -> None:
    present = {ns["type"]: ns for ns in _namespaces(spec)}
    for kind, how in REQUIRED.items():
        if kind not in present:
            raise TransformError(f"linux.namespaces: no {kind} namespace; sharing the host's ({how}) "
                                 "is not supported for system containers")
    user = present.get("user")
    if user and user.get("path"):
        raise TransformError(f"linux.namespaces: user namespace path {user['path']}: joining an existing "
                             "user namespace is not supported; sysbox-runc creates a private one")
    requested_mappings(spec)


def requested_mappings(spec: dict[str, Any]) -> dict[str, int] | None:
    """The spec's own uid/gid mapping as {uid, gid, size}, or None to let the manager choose.

    Accepted only in the shape a system container needs: one range starting at container id 0,
    at least 65536 ids long, the same size for uids and gids, never mapping host id 0.
    """
    linux = spec.get("linux", {})
    uids, gids = linux.get("uidMappings") or [], linux.get("gidMappings") or []
    if not uids and not gids:
        return None
    result = {}
    for name, maps in (("uidMappings", uids), ("gidMappings", gids)):
        if not maps:
            raise TransformError(f"linux.{name}: missing while the other mapping is given")
        maps = sorted(maps, key=lambda m: m["containerID"])
        for a, b in itertools.pairwise(maps):  # merge contiguous pieces
            if a["containerID"] + a["size"] != b["containerID"] or a["hostID"] + a["size"] != b["hostID"]:
                raise TransformError(f"linux.{name}: must be one contiguous range")
        first, size = maps[0], sum(m["size"] for m in maps)
        if first["containerID"] != 0:
            raise TransformError(f"linux.{name}[0].containerID: must be 0 (container root must be mapped)")
        if first["hostID"] == 0:
            raise TransformError(f"linux.{name}[0].hostID: must not be 0 (container root would be host root)")
        if size < MIN_SIZE:
            raise TransformError(f"linux.{name}: size {size} is below {MIN_SIZE}")
        result["uid" if name == "uidMappings" else "gid"] = first["hostID"]
        result[name] = size
    if result["uidMappings"] != result["gidMappings"]:
        raise TransformError("linux.gidMappings: size must equal the uidMappings size")
    return {"uid": result["uid"], "gid": result["gid"], "size": result["uidMappings"]}


def apply(spec: dict[str, Any], ctx: Context) -> dict[str, Any]:
    linux = spec.setdefault("linux", {})
    nss = linux.setdefault("namespaces", [])
    have = {ns["type"] for ns in nss}
    for kind in ("user", "cgroup"):
        if kind not in have:
            nss.append({"type": kind})
    linux["uidMappings"] = [{"containerID": 0, "hostID": ctx.uid, "size": ctx.size}]
    linux["gidMappings"] = [{"containerID": 0, "hostID": ctx.gid, "size": ctx.size}]
    # A ping range wider than the mapped gids is EINVAL inside a user namespace (Docker sets 0..2^31-1).
    sysctl = linux.get("sysctl") or {}
    if "net.ipv4.ping_group_range" in sysctl:
        parts = sysctl["net.ipv4.ping_group_range"].split()
        if len(parts) == 2 and parts[0].isdigit() and parts[1].isdigit():
            lo, hi = int(parts[0]), min(int(parts[1]), ctx.size - 1)
            sysctl["net.ipv4.ping_group_range"] = f"{min(lo, hi)} {hi}"
    return spec
