"""The client sysbox-runc and `sysbox mgr status` use: plain socket + json, cheap to import."""

from __future__ import annotations

from sysbox.typing_lite import TYPE_CHECKING

if TYPE_CHECKING:
    from typing import Any

from sysbox.ipc import IPCError, LineClient
from sysbox.mgr.protocol import DEFAULT_SOCKET

__all__ = ["Client", "IPCError", "render_status"]


class Client(LineClient):
    def __init__(self, path: str | None = None, timeout: float = 30.0) -> None:
        super().__init__(path or DEFAULT_SOCKET, timeout, name="sysbox-mgr")


def render_status(status: dict[str, Any]) -> str:
    pool = status["pool"]
    lines = [(f"pool: {pool['used']}/{pool['slots']} ranges of 65536 in use "
              f"(uids from {pool['uid_start']}, gids from {pool['gid_start']}; {pool['subuid_file']})")]
    rows = [("CONTAINER", "UID", "GID", "SIZE", "STATE", "PID", "SPECIAL DIRS")]
    for c in status["containers"]:
        dirs = ", ".join(f"{d['destination']}={d['source']}" for d in c["special_dirs"]) or "-"
        rows.append((c["id"], str(c["uid"]), str(c["gid"]), str(c["size"]), c["state"],
                     str(c["pid"] or "-"), dirs))
    widths = [max(len(r[i]) for r in rows) for i in range(6)]
    for r in rows:
        lines.append("  ".join(v.ljust(w) for v, w in zip(r, widths, strict=False)) + "  " + r[6])
    if len(rows) == 1:
        lines.append("(no containers)")
    return "\n".join(lines)
