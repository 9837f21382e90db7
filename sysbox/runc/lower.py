"""Finding and running the lower OCI runtime (Debian's runc by default).

sysbox-runc never re-implements what runc does well: once its own work is done it replaces
itself with runc (exec), so containerd sees runc's exit status, output and timing.
"""

from __future__ import annotations

import os

_SEARCH_FIRST = ("/usr/sbin", "/usr/bin", "/usr/local/sbin", "/usr/local/bin", "/sbin", "/bin")


class LowerRuntimeError(Exception):
    pass


def find(name: str | None = None) -> str:
    """Resolve the lower runtime: the lower-runtime setting (flag, environment, config file),
    else `runc`."""
    name = name or "runc"
    if "/" in name:
        if os.access(name, os.X_OK) and os.path.isfile(name):
            return name
        raise LowerRuntimeError(f"lower runtime {name}: not an executable file")
    dirs = list(_SEARCH_FIRST) + [d for d in os.environ.get("PATH", "").split(":") if d]
    for d in dirs:
        path = os.path.join(d, name)
        if os.path.isfile(path) and os.access(path, os.X_OK):
            return path
    raise LowerRuntimeError(f"lower runtime {name!r} not found in /usr/sbin, /usr/bin or $PATH "
                            "(install Debian's runc: apt-get install runc)")


def exec_(path: str, argv: list[str]) -> None:
    """Replace this process with the lower runtime; argv excludes the program name."""
    os.execv(path, [os.path.basename(path)] + argv)
