"""sysbox-fs entry point.  The FUSE emulation daemon is issue 7; until then this says so."""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] in ("-h", "--help"):
        print("usage: sysbox-fs [--help]\n\nThe /proc and /sys emulation daemon (not built yet).")
        return 0
    print("sysbox-fs: the /proc and /sys emulation daemon is not built yet", file=sys.stderr)
    return 2
