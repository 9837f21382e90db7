"""Debian's containerd, started by a test with sysbox-runc registered as a runtime handler.

The config is written the way a user's would be: a base config.toml (private root, state and
socket), then `sysbox install containerd --config` adds the handler.  containerd runs in a
network namespace of its own (`nsenter --net`, as for dockerd) and is stopped by pid.  The
runc v2 shim passes no arguments to its BinaryName, so the sockets and state dir of the
test's daemons reach sysbox-runc through the environment containerd hands its shims.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time

from integration import cgroupdirs


class Containerd:
    def __init__(self, base: str, sysbox_bin: str, env: dict[str, str], cri: bool = True, extra: str = "") -> None:
        self.base = base
        self.sock = os.path.join(base, "containerd.sock")
        self.config = os.path.join(base, "config.toml")
        self.netns = f"sbxctd{os.getpid()}"
        self.env = {**os.environ, **env}
        self.namespace = f"sbx{os.getpid()}"
        self.proc: subprocess.Popen | None = None
        self.cgroups_before = cgroupdirs.snapshot()
        os.makedirs(base, exist_ok=True)
        disabled = "" if cri else 'disabled_plugins = ["io.containerd.grpc.v1.cri"]\n'
        with open(self.config, "w") as f:
            f.write(f'version = 2\nroot = "{base}/root"\nstate = "{base}/state"\n{disabled}'
                    f'[grpc]\n  address = "{self.sock}"\n{extra}')
        out = subprocess.run([os.path.join(sysbox_bin, "sysbox"), "install", "containerd", "--config", self.config],
                             capture_output=True, text=True)
        if out.returncode != 0:
            raise RuntimeError(out.stderr)

    def start(self, timeout: float = 30) -> "Containerd":
        subprocess.run(["ip", "netns", "add", self.netns], check=True)
        subprocess.run(["ip", "-n", self.netns, "link", "set", "lo", "up"], check=True)
        self.proc = subprocess.Popen(["nsenter", f"--net=/run/netns/{self.netns}", "containerd", "--config", self.config],
                                     stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, env=self.env,
                                     stderr=open(os.path.join(self.base, "containerd.log"), "ab"))
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.ctr("version").returncode == 0:
                return self
            time.sleep(0.1)
        raise RuntimeError(f"containerd did not answer within {timeout} s")

    def ctr(self, *args: str, timeout: float = 120, namespace: str | None = None) -> subprocess.CompletedProcess:
        return subprocess.run(["ctr", "-a", self.sock, "-n", namespace or self.namespace, *args], capture_output=True,
                              text=True, timeout=timeout, stdin=subprocess.DEVNULL)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            for ns in (self.namespace, "k8s.io"):  # k8s.io: what the CRI plugin left, if a test failed
                for task in self.ctr("tasks", "ls", "-q", timeout=30, namespace=ns).stdout.split():
                    self.ctr("tasks", "kill", "-s", "KILL", task, timeout=30, namespace=ns)
                deadline = time.monotonic() + 30
                while self.ctr("tasks", "ls", "-q", timeout=30, namespace=ns).stdout.split() and time.monotonic() < deadline:
                    time.sleep(0.2)
                for c in self.ctr("containers", "ls", "-q", timeout=30, namespace=ns).stdout.split():
                    self.ctr("tasks", "delete", "-f", c, timeout=30, namespace=ns)
                    self.ctr("containers", "delete", c, timeout=30, namespace=ns)
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        subprocess.run(["ip", "netns", "del", self.netns], capture_output=True)
        # containerd leaves a parent cgroup per namespace (/sbx<pid>, /k8s.io) behind
        cgroupdirs.prune(self.cgroups_before, (self.namespace, "k8s.io"))
        with open("/proc/self/mountinfo") as f:  # shim leftovers, if containerd had to be killed
            stale = sorted((line.split()[4] for line in f if self.base in line.split()[4]), reverse=True)
        for point in stale:
            subprocess.run(["umount", "-l", point], capture_output=True)
