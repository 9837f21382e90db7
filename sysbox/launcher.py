"""Writes the fast launcher for sysbox-runc.

containerd calls `sysbox-runc state` and `kill` many times per container.  The console script
pip generates runs Python's site processing (with an editable install, an import hook that
pulls in pathlib and re: ~20 ms a call here) and imports re itself.  This launcher starts
Python with -S and puts exactly the two directories sysbox needs on sys.path, so the hot path
pays for the interpreter and the flag table only.  `make venv` (scripts/setup.sh) installs it.

Usage: python -m sysbox.launcher PATH   (normally .venv/bin/sysbox-runc)
"""

from __future__ import annotations

import os
import sys
import sysconfig

TEMPLATE = """#!{python} -S
# sysbox-runc launcher written by `python -m sysbox.launcher` (see sysbox/launcher.py):
# no site processing, so containerd's frequent state/kill calls start fast.
import sys
sys.path[:0] = {paths!r}
from sysbox.runc.main import main
sys.exit(main())
"""


def paths() -> list[str]:
    import sysbox

    out = [os.path.dirname(os.path.dirname(os.path.abspath(sysbox.__file__)))]
    for key in ("purelib", "platlib"):
        p = sysconfig.get_paths()[key]
        if p not in out:
            out.append(p)
    return out


def write(path: str) -> None:
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write(TEMPLATE.format(python=sys.executable, paths=paths()))
    os.chmod(tmp, 0o755)
    os.replace(tmp, path)


if __name__ == "__main__":
    write(sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(sys.executable), "sysbox-runc"))
