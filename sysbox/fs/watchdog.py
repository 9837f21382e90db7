"""sysbox-fs's watchdog: a hung sysbox-fs must not hang its containers.

A FUSE request waits for its answer as long as the daemon takes; a frozen daemon (SIGSTOP, a
deadlock, a debugger) would leave every read of an emulated file, and every exit of a process
holding one open (close() waits for FLUSH), stuck forever - the worst failure of Sysbox's and
lxcfs's users.  This small separate process pings the daemon's control socket; when no answer
comes for `timeout` seconds while the daemon still exists, it aborts the FUSE connection
(umount with MNT_FORCE calls FUSE's umount_begin, which fails every pending and future request
with ENOTCONN).  Reads then fail fast with an errno, and containers can stop and be deleted.
It exits with the daemon, and after an abort (the connections cannot be revived).
"""

from __future__ import annotations

import argparse
import logging
import sys
import time

from sysbox.linux.proc import start_time

log = logging.getLogger("sysbox-fs-watchdog")


def _ping(socket: str, timeout: float) -> bool:
    from sysbox.ipc import IPCError, LineClient

    try:
        with LineClient(socket, timeout=timeout, name="sysbox-fs") as c:
            c.call("ping")
        return True
    except IPCError:
        return False


def abort(mountpoint: str) -> None:
    from sysbox.linux import fusedev
    from sysbox.linux.tree import mounts_under

    for point in mounts_under(mountpoint):  # only sysbox-fs connections are mounted there
        fusedev.abort(point)  # aborts the connection even when the mount stays (EBUSY)


def watch(pid: int, socket: str, mountpoint: str, timeout: float) -> int:
    started = start_time(pid)
    interval = max(0.2, timeout / 4)
    last_ok = time.monotonic()
    while True:
        time.sleep(interval)
        if start_time(pid) != started:
            return 0  # the daemon is gone: so is its mount, nothing to guard
        if _ping(socket, interval):
            last_ok = time.monotonic()
            continue
        if time.monotonic() - last_ok >= timeout and start_time(pid) == started:
            log.error("sysbox-fs (pid %d) has not answered for %.1f s: aborting its FUSE connection at %s so "
                      "that container reads fail (ENOTCONN) instead of hanging", pid, timeout, mountpoint)
            abort(mountpoint)
            return 1


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="sysbox-fs-watchdog")
    p.add_argument("--pid", type=int, required=True)
    p.add_argument("--socket", required=True)
    p.add_argument("--mountpoint", required=True)
    p.add_argument("--timeout", type=float, required=True)
    p.add_argument("--log")
    args = p.parse_args(argv)
    logging.basicConfig(filename=args.log, level=logging.INFO,
                        format="%(asctime)s %(levelname)s watchdog: %(message)s")
    return watch(args.pid, args.socket, args.mountpoint, args.timeout)


if __name__ == "__main__":
    sys.exit(main())
