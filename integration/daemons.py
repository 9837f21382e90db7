"""Running the real daemons (sysbox-mgr, sysbox-fs) as subprocesses on private paths (socket,
data root, mount point, pid file), so tests run side by side under xdist and never touch
/run/sysbox.  Stopped by pid: SIGTERM, then SIGKILL if they do not exit in time."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

from sysbox.fs.client import Client as FsClient
from sysbox.ipc import IPCError, LineClient
from sysbox.mgr.client import Client

VENV_BIN = os.path.dirname(sys.executable)
POOL_START = 1 << 24  # far above any real subuid range on a test host


class Daemon:
    name = "daemon"

    def __init__(self, base: str) -> None:
        self.base = base
        self.socket = os.path.join(base, f"{self.name}.sock")
        self.pid_file = os.path.join(base, f"{self.name}.pid")
        self.log = os.path.join(base, f"{self.name}.log")
        self.proc: subprocess.Popen | None = None
        os.makedirs(base, exist_ok=True)

    def argv(self) -> list[str]:
        raise NotImplementedError

    def client(self) -> LineClient:
        raise NotImplementedError

    def start(self, timeout: float = 15.0, env: dict[str, str] | None = None):
        self.proc = subprocess.Popen(self.argv(), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=open(os.path.join(self.base, "stderr"), "ab"),
                                     env={**os.environ, **env} if env else None)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"sysbox-{self.name} exited with {self.proc.returncode}: {self.read_log()}")
            try:
                with self.client() as c:
                    c.call("ping")
                return self
            except IPCError:
                time.sleep(0.02)
        raise RuntimeError(f"sysbox-{self.name} did not answer within {timeout} s")

    def call(self, op: str, **args):
        with self.client() as c:
            return c.call(op, **args)

    def signal(self, sig: int) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(sig)

    def stop(self, timeout: float = 10.0) -> int | None:
        """SIGTERM, then SIGKILL if it does not exit in time; returns the exit status."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout)
        return self.proc.returncode

    def kill(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)

    def read_log(self) -> str:
        text = ""
        for name in (f"{self.name}.log", "stderr"):
            try:
                with open(os.path.join(self.base, name)) as f:
                    text += f.read()
            except FileNotFoundError:
                pass
        return text


class Mgr(Daemon):
    name = "mgr"

    def __init__(self, base: str, slots: int = 4096, gc_interval: float = 30.0,
                 pool_start: int = POOL_START) -> None:
        super().__init__(base)
        self.data_root = os.path.join(base, "data")
        self.subuid = os.path.join(base, "subuid")
        self.subgid = os.path.join(base, "subgid")
        self.gc_interval = gc_interval
        for path in (self.subuid, self.subgid):
            if not os.path.exists(path):
                with open(path, "w") as f:
                    f.write(f"someone:100000:65536\nsysbox:{pool_start}:{slots * 65536}\n")

    def argv(self) -> list[str]:
        return [os.path.join(VENV_BIN, "sysbox-mgr"), "--socket", self.socket, "--data-root", self.data_root,
                "--pid-file", self.pid_file, "--subuid-file", self.subuid, "--subgid-file", self.subgid,
                "--log", self.log, "--log-level", "debug", "--gc-interval", str(self.gc_interval)]

    def client(self) -> Client:
        return Client(self.socket, timeout=10)


class Fs(Daemon):
    name = "fs"

    def __init__(self, base: str, watchdog_timeout: float = 10.0) -> None:
        super().__init__(base)
        self.mountpoint = os.path.join(base, "mnt")
        self.seccomp_socket = os.path.join(base, "seccomp.sock")
        self.holder_socket = os.path.join(base, "holder.sock")
        self.watchdog_timeout = watchdog_timeout

    def argv(self) -> list[str]:
        return [os.path.join(VENV_BIN, "sysbox-fs"), "--socket", self.socket, "--mountpoint", self.mountpoint,
                "--seccomp-socket", self.seccomp_socket, "--holder-socket", self.holder_socket,
                "--state-dir", os.path.join(self.base, "state"),
                "--pid-file", self.pid_file, "--log", self.log, "--log-level", "debug",
                "--watchdog-timeout", str(self.watchdog_timeout)]

    def client(self) -> FsClient:
        return FsClient(self.socket, timeout=10)

    def stop(self, timeout: float = 10.0) -> int | None:
        """The daemon, then the fd holder it started (by the pid it wrote)."""
        from sysbox.fs.handover import stop_holder

        status = super().stop(timeout)
        stop_holder(self.holder_socket, timeout)
        return status
