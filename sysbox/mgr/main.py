"""sysbox-mgr command line: options, logging, the single-instance pid file, then the server."""

from __future__ import annotations

import argparse
import os
import sys

from sysbox.daemonmain import run_daemon, setup_logging
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
                   help="pid file, locked while running; a second instance refuses to start "
                        f"(default {DEFAULT_PID_FILE})")
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
    log = setup_logging("sysbox-mgr", args.log, args.log_level)

    def body() -> int:
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
        log.info("Starting sysbox-mgr (pid %d, data root %s)", os.getpid(), args.data_root)
        trio.run(serve, cfg)
        return 0

    return run_daemon("sysbox-mgr", args.pid_file, body)


if __name__ == "__main__":
    sys.exit(main())
