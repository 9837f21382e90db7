"""The `sysbox` entries of /etc/subuid and /etc/subgid: the pool container id ranges come from.

Like Sysbox's installer we create a system user `sysbox` and give it a large range (4096
ranges of 65536 ids) placed after every range already handed out in the file, so it never
overlaps ids that belong to other users.
"""

from __future__ import annotations

import os
import pwd
import subprocess

SUBUID = "/etc/subuid"
SUBGID = "/etc/subgid"
USER = "sysbox"
RANGE = 65536
DEFAULT_COUNT = RANGE * 4096
FIRST_START = 1 << 20  # leave the low ids to ordinary users and rootless tools


class SubidError(Exception):
    pass


def read_ranges(path: str, user: str = USER) -> list[tuple[int, int]]:
    """[(start, count)] of `user` in a subuid/subgid file (missing file -> [])."""
    out = []
    try:
        with open(path) as f:
            lines = f.read().splitlines()
    except FileNotFoundError:
        return []
    for n, line in enumerate(lines, 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        parts = line.split(":")
        if len(parts) != 3:
            raise SubidError(f"{path}:{n}: expected NAME:START:COUNT, got {line!r}")
        if parts[0] != user:
            continue
        try:
            out.append((int(parts[1]), int(parts[2])))
        except ValueError:
            raise SubidError(f"{path}:{n}: START and COUNT must be integers in {line!r}") from None
    return out


def _end_of_all(path: str) -> int:
    end = 0
    try:
        with open(path) as f:
            for line in f:
                parts = line.strip().split(":")
                if len(parts) == 3 and parts[1].isdigit() and parts[2].isdigit():
                    end = max(end, int(parts[1]) + int(parts[2]))
    except FileNotFoundError:
        pass
    return end


def ensure_user(user: str = USER) -> None:
    """Create the system user that owns the ranges, as Sysbox's installer does."""
    try:
        pwd.getpwnam(user)
    except KeyError:
        subprocess.run(["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", user],
                       check=True, capture_output=True)


def ensure_range(path: str, user: str = USER, count: int = DEFAULT_COUNT) -> tuple[int, int]:
    """Return the user's first range in `path`, appending a fresh one (atomically) if missing."""
    ranges = read_ranges(path, user)
    if ranges:
        return ranges[0]
    start = max(FIRST_START, _end_of_all(path))
    start = (start + RANGE - 1) // RANGE * RANGE
    try:
        with open(path) as f:
            old = f.read()
    except FileNotFoundError:
        old = ""
    if old and not old.endswith("\n"):
        old += "\n"
    tmp = f"{path}.sysbox-tmp"
    with open(tmp, "w") as f:
        f.write(f"{old}{user}:{start}:{count}\n")
        f.flush()
        os.fsync(f.fileno())
    os.chmod(tmp, 0o644)
    os.rename(tmp, path)
    return start, count
