"""Refusing specs that ask for host privilege, which a system container replaces with a user namespace."""

from __future__ import annotations

from sysbox.typing_lite import TYPE_CHECKING

if TYPE_CHECKING:
    from typing import Any

from sysbox.runc.transform import TransformError


def check(spec: dict[str, Any]) -> None:
    devices = spec.get("linux", {}).get("resources", {}).get("devices") or []
    for i, rule in enumerate(devices):
        if rule.get("allow") and rule.get("type", "a") == "a" and "major" not in rule and "minor" not in rule \
                and set(rule.get("access", "rwm")) >= set("rwm"):
            raise TransformError(
                f"linux.resources.devices[{i}]: access to all host devices (docker --privileged) is not "
                "supported: a system container's root is privileged only inside its user namespace; "
                "drop --privileged")
