"""Refusing specs that ask for host privilege, which a system container replaces with a user namespace."""

from __future__ import annotations

from sysbox.typing_lite import TYPE_CHECKING

if TYPE_CHECKING:
    from typing import Any

from sysbox.runc.transform import Context, TransformError


def check(spec: dict[str, Any]) -> None:
    devices = spec.get("linux", {}).get("resources", {}).get("devices") or []
    for i, rule in enumerate(devices):
        if rule.get("allow") and rule.get("type", "a") == "a" and "major" not in rule and "minor" not in rule \
                and set(rule.get("access", "rwm")) >= set("rwm"):
            raise TransformError(
                f"linux.resources.devices[{i}]: access to all host devices (docker --privileged) is not "
                "supported: a system container's root is privileged only inside its user namespace; "
                "drop --privileged")


def apply(spec: dict[str, Any], ctx: Context) -> dict[str, Any]:
    """Raise process.oomScoreAdj to what runc may set.  Lowering the score below the caller's
    needs CAP_SYS_RESOURCE, which some hosts' root lacks; the CRI asks -998 for pod sandboxes,
    and runc would fail with nothing but "can't get final child's PID from pipe"."""
    proc = spec.get("process") or {}
    adj = proc.get("oomScoreAdj")
    if ctx.oom_floor is not None and isinstance(adj, int) and adj < ctx.oom_floor:
        proc["oomScoreAdj"] = ctx.oom_floor
    return spec
