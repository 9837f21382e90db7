"""sysbox-fs command line: options, logging, the single-instance pid file, then the server."""

from __future__ import annotations

import argparse
import os
import sys

from sysbox.daemonmain import run_daemon, setup_logging
from sysbox.fs.protocol import (
    DEFAULT_HOLDER_SOCKET,
    DEFAULT_MOUNTPOINT,
    DEFAULT_PID_FILE,
    DEFAULT_SECCOMP_SOCKET,
    DEFAULT_SOCKET,
    DEFAULT_STATE_DIR,
)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="sysbox-fs", description=(
        "sysbox-fs: per-container emulation of /proc and /sys nodes (uptime, /proc/sys, meminfo, "
        "cpuinfo, ...) through one FUSE mount that sysbox-runc binds into each container."))
    p.add_argument("--mountpoint", default=DEFAULT_MOUNTPOINT, help=f"FUSE mount point (default {DEFAULT_MOUNTPOINT})")
    p.add_argument("--socket", default=DEFAULT_SOCKET, help=f"control socket (default {DEFAULT_SOCKET})")
    p.add_argument("--seccomp-socket", default=DEFAULT_SECCOMP_SOCKET,
                   help=f"where runc hands over seccomp notify fds (default {DEFAULT_SECCOMP_SOCKET})")
    p.add_argument("--holder-socket", default=DEFAULT_HOLDER_SOCKET,
                   help="the fd holder's socket: it keeps every container's FUSE connection and seccomp listener "
                        "while sysbox-fs restarts, started if none runs; '' for none (a restart is then seen "
                        f"by containers) (default {DEFAULT_HOLDER_SOCKET})")
    p.add_argument("--state-dir", default=DEFAULT_STATE_DIR,
                   help=f"per-container mounts (a sysfs in each network namespace) (default {DEFAULT_STATE_DIR})")
    p.add_argument("--pid-file", default=DEFAULT_PID_FILE,
                   help=f"pid file, locked while running (default {DEFAULT_PID_FILE})")
    p.add_argument("--watchdog-timeout", type=float, default=10.0,
                   help="abort the FUSE connection when this daemon has not answered for this many seconds, "
                        "so container reads fail instead of hanging (0: no watchdog; default 10)")
    p.add_argument("--log", help="log file (default: stderr)")
    p.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    return p


def _start_watchdog(args: argparse.Namespace):
    """The watchdog runs beside us (sysbox/fs/watchdog.py), in its own process: a frozen
    sysbox-fs cannot watch itself."""
    import subprocess

    argv = [sys.executable, "-m", "sysbox.fs.watchdog", "--pid", str(os.getpid()), "--socket", args.socket,
            "--mountpoint", args.mountpoint, "--timeout", str(args.watchdog_timeout)]
    if args.log:
        argv += ["--log", args.log]
    return subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    log = setup_logging("sysbox-fs", args.log, args.log_level)

    def body() -> int:
        import trio

        from sysbox.fs.daemon import Config, serve

        log.info("Starting sysbox-fs (pid %d)", os.getpid())
        dog = _start_watchdog(args) if args.watchdog_timeout > 0 else None
        try:
            trio.run(serve, Config(socket=args.socket, mountpoint=args.mountpoint, seccomp_socket=args.seccomp_socket,
                                   state_dir=args.state_dir, holder_socket=args.holder_socket or None,
                                   holder_log=args.log))
        finally:
            if dog is not None and dog.poll() is None:
                dog.terminate()
                dog.wait(5)
        return 0

    return run_daemon("sysbox-fs", args.pid_file, body)


if __name__ == "__main__":
    sys.exit(main())
