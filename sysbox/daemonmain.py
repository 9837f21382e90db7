"""What both daemons' main() share: logging to stderr or a file, root check, the pid-file lock."""

from __future__ import annotations

import fcntl
import logging
import os
import sys
from collections.abc import Callable


def setup_logging(name: str, path: str | None, level: str) -> logging.Logger:
    handler = logging.FileHandler(path) if path else logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    log = logging.getLogger(name)
    log.addHandler(handler)
    log.setLevel(level.upper())
    return log


def lock_pid_file(path: str, name: str) -> int:
    """Hold an exclusive lock on the pid file for the daemon's life: a second instance refuses."""
    os.makedirs(os.path.dirname(path) or ".", mode=0o755, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        other = os.pread(fd, 32, 0).decode().strip() or "?"
        os.close(fd)
        raise SystemExit(f"{name}: another {name} (pid {other}) holds {path}") from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    return fd


def raise_fd_limit() -> None:
    """Soft RLIMIT_NOFILE up to the hard limit: every container holds fds in a daemon.  At the
    limit a daemon refuses new work with an error; it never exits for lack of fds."""
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or hard > soft:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard if hard != resource.RLIM_INFINITY else 1 << 20, hard))
        except (ValueError, OSError):
            pass


def run_daemon(name: str, pid_file: str, body: Callable[[], int]) -> int:
    """Refuse non-root, hold the pid file while body() runs, remove it afterwards."""
    if os.geteuid() != 0:
        print(f"{name}: must run as root", file=sys.stderr)
        return 1
    fd = lock_pid_file(pid_file, name)
    raise_fd_limit()
    try:
        return body()
    finally:
        try:
            os.unlink(pid_file)
        except FileNotFoundError:
            pass
        os.close(fd)
