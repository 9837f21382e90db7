"""Capabilities: the full set for the container's root, which is safe only inside its user namespace.

Root (uid 0) gets every capability by default, in every set, as in Sysbox: system software
(systemd, dockerd, mount) expects a VM's root.  Every other process gets exactly what the spec
asks for, as with runc.  With honor-caps (the `honor-caps = true` setting, SYSBOX_HONOR_CAPS=1,
or the annotation io.sysbox.honor-caps=true on one container) root gets exactly what the spec
asks for too (Sysbox's SYSBOX_HONOR_CAPS).
"""

from __future__ import annotations

from sysbox.typing_lite import TYPE_CHECKING

if TYPE_CHECKING:
    from typing import Any

from sysbox.runc.transform import Context

NAMES = ["CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_DAC_READ_SEARCH", "CAP_FOWNER", "CAP_FSETID", "CAP_KILL",
         "CAP_SETGID", "CAP_SETUID", "CAP_SETPCAP", "CAP_LINUX_IMMUTABLE", "CAP_NET_BIND_SERVICE",
         "CAP_NET_BROADCAST", "CAP_NET_ADMIN", "CAP_NET_RAW", "CAP_IPC_LOCK", "CAP_IPC_OWNER", "CAP_SYS_MODULE",
         "CAP_SYS_RAWIO", "CAP_SYS_CHROOT", "CAP_SYS_PTRACE", "CAP_SYS_PACCT", "CAP_SYS_ADMIN", "CAP_SYS_BOOT",
         "CAP_SYS_NICE", "CAP_SYS_RESOURCE", "CAP_SYS_TIME", "CAP_SYS_TTY_CONFIG", "CAP_MKNOD", "CAP_LEASE",
         "CAP_AUDIT_WRITE", "CAP_AUDIT_CONTROL", "CAP_SETFCAP", "CAP_MAC_OVERRIDE", "CAP_MAC_ADMIN",
         "CAP_SYSLOG", "CAP_WAKE_ALARM", "CAP_BLOCK_SUSPEND", "CAP_AUDIT_READ", "CAP_PERFMON", "CAP_BPF",
         "CAP_CHECKPOINT_RESTORE"]


def all_caps(cap_last_cap: int) -> list[str]:
    return NAMES[: min(cap_last_cap, len(NAMES) - 1) + 1]


HONOR_ANNOTATION = "io.sysbox.honor-caps"


def honored(spec: dict[str, Any], setting: str | None) -> bool:
    """Does this container keep its spec's capabilities for root too?"""
    value = (spec.get("annotations") or {}).get(HONOR_ANNOTATION) or setting or ""
    return value.strip().lower() in ("1", "true", "yes")


def for_process(process: dict[str, Any], cap_last_cap: int, honor: bool) -> None:
    """The rule above, applied to one process spec (create's, or exec's)."""
    if process.get("user", {}).get("uid", 0) == 0 and not honor:
        full = all_caps(cap_last_cap)
        process["capabilities"] = {k: list(full) for k in ("bounding", "effective", "inheritable", "permitted")}
        process["capabilities"]["ambient"] = []
    # otherwise the spec's own sets stand, exactly as runc would apply them


def apply(spec: dict[str, Any], ctx: Context) -> dict[str, Any]:
    process = spec.setdefault("process", {})
    for_process(process, ctx.cap_last_cap, bool(ctx.honor_caps))
    process.pop("apparmorProfile", None)  # the host's profile would forbid mount inside
    return spec
