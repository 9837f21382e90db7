"""Logging where runc's callers look: the --log file, in runc's text or JSON format.

containerd-shim-runc-v2 reads the last `error` entry of the JSON log to report why a runtime
call failed; warnings (like a chown fallback) go there too, or to stderr without --log.
"""

from __future__ import annotations

import os
import sys

from sysbox.typing_lite import TYPE_CHECKING

if TYPE_CHECKING:
    from typing import Any


def log(globals_: dict[str, Any], level: str, msg: str) -> None:
    """One entry at `level` (error, warning, info; debug only with --debug)."""
    if level == "debug" and not globals_.get("debug"):
        return
    path = globals_.get("log")
    if level == "error" or not isinstance(path, str) or not path:
        if level in ("error", "warning"):
            sys.stderr.write(f"sysbox-runc: {msg}\n")
        if not (isinstance(path, str) and path):
            return
    import time

    from sysbox import jsonfast as json  # containerd always passes --log: json's imports cost ~10 ms

    stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())  # RFC 3339, as the shim's Go parser wants
    if globals_.get("log-format") == "json":
        line = json.dumps({"level": level, "msg": msg, "time": stamp})
    else:
        line = f'time="{stamp}" level={level} msg={json.dumps(msg)}'
    try:
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600)  # host root's only
        with os.fdopen(fd, "a") as f:
            f.write(line + "\n")
    except OSError:
        pass
