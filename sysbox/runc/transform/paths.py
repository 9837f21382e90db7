"""Masked and read-only paths: keep those that protect the host, drop those the user namespace
already makes safe and that system software needs writable (sysctl at boot, inner dockerd)."""

from __future__ import annotations

from sysbox.typing_lite import TYPE_CHECKING

if TYPE_CHECKING:
    from typing import Any

# Writes here fail with EACCES for host-global knobs anyway (owned by host root, which is not
# mapped in the container); namespaced knobs (net.*) belong to the container.
WRITABLE = frozenset({"/proc/sys", "/proc/sysrq-trigger"})


def apply(spec: dict[str, Any]) -> dict[str, Any]:
    linux = spec.setdefault("linux", {})
    if "readonlyPaths" in linux:
        linux["readonlyPaths"] = [p for p in linux["readonlyPaths"] if p not in WRITABLE]
    return spec
