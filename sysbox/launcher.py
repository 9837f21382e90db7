"""Writes the fast launcher for sysbox-runc.

containerd calls `sysbox-runc state` and `kill` many times per container.  The installed
command is a POSIX sh front end (sysbox/data/sysbox-runc) that execs runc itself for the calls
that only pass through (about 1 ms, no Python at all), and starts Python for the rest.  That
Python runs isolated and without site processing (-I -S: pip's console script with an editable
install pulls in pathlib and re through an import hook, ~20 ms a call here), with exactly the
two directories sysbox needs on sys.path.  `make venv` (scripts/setup.sh) installs it.

Usage: python -m sysbox.launcher PATH   (normally .venv/bin/sysbox-runc)
"""

from __future__ import annotations

import json
import os
import shlex
import sys
import sysconfig

FRONT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data", "sysbox-runc")
MAIN = "import sys; sys.path[:0] = {paths}; from sysbox.runc.main import main; sys.exit(main())"


def python_main() -> str:
    """The command line the front end (sysbox/data/sysbox-runc) runs for everything it does not pass through itself."""
    code = MAIN.format(paths=json.dumps(paths()))
    return f"{shlex.quote(sys.executable)} -I -S -c {shlex.quote(code)}"


def render() -> str:
    with open(FRONT) as f:
        text = f.read()
    marker = "\nPYTHON_MAIN= "
    assert marker in text, FRONT
    return text.replace(marker, f"\nPYTHON_MAIN={shlex.quote(python_main())} ", 1)


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
        f.write(render())
    os.chmod(tmp, 0o755)
    os.replace(tmp, path)


if __name__ == "__main__":
    write(sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(sys.executable), "sysbox-runc"))
