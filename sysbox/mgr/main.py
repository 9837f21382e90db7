"""sysbox-mgr command line: options, logging, the single-instance pid file, then the server."""

from __future__ import annotations

import argparse
import fcntl
import logging
import os
import sys

from sysbox.mgr.protocol import DEFAULT_DATA_ROOT, DEFAULT_PID_FILE, DEFAULT_SOCKET


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="sysbox-mgr", description=(
        "sysbox-mgr: allocates exclusive uid/gid ranges to system containers, creates their "
        "host-backed special dirs, and keeps crash-safe records of both."))
    p.add_argument("--socket", default=DEFAULT_SOCKET, help=f"unix socket to serve (default {DEFAULT_SOCKET})")
    p.add_argument("--data-root", default=DEFAULT_DATA_ROOT,
                   help=f"where special dirs and the database live (default {DEFAULT_DATA_ROOT})")
    p.add_argument("--db", help="sqlite database path (default <data-root>/mgr.db)")
    p.add_argument("--pid-file", default=DEFAULT_PID_FILE,
                   help=f"pid file, locked while running; a second instance refuses to start (default {DEFAULT_PID_FILE})")
    p.add_argument("--subuid-file", default="/etc/subuid", help="subordinate uid file (default /etc/subuid)")
    p.add_argument("--subgid-file", default="/etc/subgid", help="subordinate gid file (default /etc/subgid)")
    p.add_argument("--subid-user", default="sysbox",
                   help="user whose subuid/subgid entries form the pool (default sysbox; created with a "
                        "65536 x 4096 range when missing)")
    p.add_argument("--gc-interval", type=float, default=30.0,
                   help="seconds between sweeps that release vanished containers (default 30)")
    p.add_argument("--log", help="log file (default: stderr)")
    p.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"],
                   help="log level (default info)")
    return p


def lock_pid_file(path: str, name: str = "sysbox-mgr") -> int:
    """Hold an exclusive lock on the pid file for the daemon's life: a second instance refuses."""
    os.makedirs(os.path.dirname(path) or ".", mode=0o755, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        other = os.pread(fd, 32, 0).decode().strip() or "?"
        os.close(fd)
        raise SystemExit(f"{name}: another {name} (pid {other}) holds {path}")
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    return fd


def _pool(args: argparse.Namespace):
    from sysbox import subid
    from sysbox.mgr.allocator import Pool

    system = args.subuid_file == subid.SUBUID and args.subgid_file == subid.SUBGID
    if system:
        subid.ensure_user(args.subid_user)
    uid = subid.ensure_range(args.subuid_file, args.subid_user)
    gid = subid.ensure_range(args.subgid_file, args.subid_user)
    return Pool(uid[0], uid[1], gid[0], gid[1], args.subuid_file)


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    handler = logging.FileHandler(args.log) if args.log else logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    root = logging.getLogger("sysbox-mgr")
    root.addHandler(handler)
    root.setLevel(args.log_level.upper())
    if os.geteuid() != 0:
        print("sysbox-mgr: must run as root", file=sys.stderr)
        return 1
    pid_fd = lock_pid_file(args.pid_file)
    try:
        import trio

        from sysbox.mgr.daemon import Config, serve
        from sysbox.subid import SubidError

        try:
            pool = _pool(args)
        except (SubidError, OSError) as e:
            print(f"sysbox-mgr: {e}", file=sys.stderr)
            return 1
        os.makedirs(args.data_root, mode=0o711, exist_ok=True)
        cfg = Config(socket=args.socket, data_root=args.data_root,
                     db=args.db or os.path.join(args.data_root, "mgr.db"), pool=pool,
                     gc_interval=args.gc_interval)
        root.info("Starting sysbox-mgr (pid %d, data root %s)", os.getpid(), args.data_root)
        trio.run(serve, cfg)
    finally:
        try:
            os.unlink(args.pid_file)
        except FileNotFoundError:
            pass
        os.close(pid_fd)
    return 0


if __name__ == "__main__":
    sys.exit(main())
