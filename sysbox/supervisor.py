"""`sysbox daemon`: start sysbox-mgr, then sysbox-fs, wait until both answer, and stop them
cleanly (fs first, then mgr) on SIGTERM/SIGINT.  If either dies, the other is stopped and the
supervisor exits non-zero, so a service manager can restart the pair.  For hosts without
systemd; with systemd, the units in sysbox/data/systemd do the same (`sysbox install systemd`).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

from sysbox.errors import SysboxError
from sysbox.ipc import IPCError, LineClient


def _bin(name: str) -> str:
    return os.path.join(os.path.dirname(sys.executable), name)


def _wait_ready(proc: subprocess.Popen, socket: str, name: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SysboxError(f"{name} exited with status {proc.returncode} while starting")
        try:
            with LineClient(socket, timeout=5, name=name) as c:
                c.call("ping")
            return
        except IPCError:
            time.sleep(0.05)
    raise SysboxError(f"{name} did not answer on {socket} within {timeout:.0f} s")


def _stop(proc: subprocess.Popen, timeout: float = 20) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


def run(run_dir: str, data_root: str, mountpoint: str, log_dir: str | None = None) -> int:
    log = (lambda name: ["--log", os.path.join(log_dir, f"{name}.log")]) if log_dir else (lambda name: [])
    mgr_sock, fs_sock = os.path.join(run_dir, "mgr.sock"), os.path.join(run_dir, "fs.sock")
    children: list[subprocess.Popen] = []
    stopping = False

    def on_signal(signum: int, frame: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    try:
        mgr = subprocess.Popen([_bin("sysbox-mgr"), "--socket", mgr_sock,
                                "--pid-file", os.path.join(run_dir, "mgr.pid"),
                                "--data-root", data_root, *log("sysbox-mgr")], stdin=subprocess.DEVNULL)
        children.append(mgr)
        _wait_ready(mgr, mgr_sock, "sysbox-mgr")
        fs = subprocess.Popen([_bin("sysbox-fs"), "--socket", fs_sock, "--pid-file", os.path.join(run_dir, "fs.pid"),
                               "--mountpoint", mountpoint, "--seccomp-socket", os.path.join(run_dir, "fs-seccomp.sock"),
                               "--state-dir", os.path.join(run_dir, "fs"),
                               "--holder-socket", os.path.join(run_dir, "fs-holder.sock"), *log("sysbox-fs")],
                              stdin=subprocess.DEVNULL)
        children.append(fs)
        _wait_ready(fs, fs_sock, "sysbox-fs")
        print(f"sysbox: ready (sysbox-mgr pid {mgr.pid} on {mgr_sock}, sysbox-fs pid {fs.pid} on {fs_sock})",
              flush=True)
        while not stopping:
            for p, name in ((mgr, "sysbox-mgr"), (fs, "sysbox-fs")):
                if p.poll() is not None:
                    print(f"sysbox: {name} exited with status {p.returncode}; stopping", file=sys.stderr, flush=True)
                    return 1
            time.sleep(0.2)
        return 0
    finally:
        for p in reversed(children):
            _stop(p)
        from sysbox.fs.handover import stop_holder

        stop_holder(os.path.join(run_dir, "fs-holder.sock"))  # a full stop: the connections end too
        if stopping:
            print("sysbox: stopped", flush=True)
