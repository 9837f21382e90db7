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


def cap_eff(pid: int | str) -> int:
    """The effective capability set of `pid` (or "self"), as a bit mask."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("CapEff:"):
                return int(line.split()[1], 16)
    return 0


def cap_last_cap() -> int:
    """The highest capability this kernel knows; 40 (Linux 5.9's) if it cannot be read."""
    try:
        with open("/proc/sys/kernel/cap_last_cap") as f:
            return int(f.read())
    except (OSError, ValueError):
        return 40


CAP_SYS_RESOURCE = 24


def oom_floor() -> int | None:
    """None if we may lower oom_score_adj (CAP_SYS_RESOURCE), else our own value: the lowest
    a process we start can be given."""
    try:
        if cap_eff("self") >> CAP_SYS_RESOURCE & 1:
            return None
        with open("/proc/self/oom_score_adj") as f:
            return int(f.read())
    except (OSError, ValueError):
        return None


def task_state(tid: int | str) -> str | None:
    """The state letter of a task (R running, D uninterruptible, S sleeping, ...) from field 3
    of /proc/<tid>/stat, None if it is gone."""
    try:
        with open(f"/proc/{tid}/stat", "rb") as f:
            data = f.read()
        end = data.rindex(b")")
        return data[end + 2:end + 3].decode() or None
    except (OSError, ValueError):
        return None
