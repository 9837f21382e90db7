"""Facts about host processes from /proc, for the liveness checks every daemon makes."""

from __future__ import annotations


def start_time(pid: int) -> int | None:
    """The process start time in clock ticks since boot (field 22 of /proc/<pid>/stat), None if
    the process is gone.  A pid with the same start time is the same process, not a reuse."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read()
        return int(data[data.rindex(b")") + 2:].split()[19])
    except (OSError, ValueError, IndexError):
        return None
