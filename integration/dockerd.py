"""Debian's containerd and dockerd, started by a test in a network namespace of its own.

dockerd creates a bridge and iptables rules: in a private network namespace they touch
nothing of the host's, and published ports are reached from inside that namespace only.
`nsenter --net` is used rather than `ip netns exec`, which would also remount /sys and hide
the cgroup mounts dockerd needs.  Both daemons are stopped by pid.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time

from integration import cgroupdirs


class DockerDaemon:
    def __init__(self, base: str, runtime_path: str, runtime_args: list[str]) -> None:
        self.base = base
        self.netns = f"sbxtest{os.getpid()}"
        self.sock = os.path.join(base, "docker.sock")
        self.ctd_sock = os.path.join(base, "containerd.sock")
        self.procs: list[subprocess.Popen] = []
        self.cgroups_before = cgroupdirs.snapshot()
        os.makedirs(base, exist_ok=True)
        with open(os.path.join(base, "containerd.toml"), "w") as f:
            f.write(f'version = 2\nroot = "{base}/containerd-root"\nstate = "{base}/containerd-state"\n'
                    f'disabled_plugins = ["io.containerd.grpc.v1.cri"]\n[grpc]\n  address = "{self.ctd_sock}"\n')
        daemon_json = os.path.join(base, "daemon.json")
        with open(daemon_json, "w") as f:
            json.dump({"storage-driver": "overlay2"}, f)
        # registered the way a user does it
        sysbox = os.path.join(os.path.dirname(runtime_path), "sysbox")
        subprocess.run([sysbox, "install", "docker", "--daemon-json", daemon_json,
                        *[f"--runtime-arg={a}" for a in runtime_args]], check=True, capture_output=True)

    def _spawn(self, argv: list[str], log: str) -> subprocess.Popen:
        p = subprocess.Popen(["nsenter", f"--net=/run/netns/{self.netns}", *argv], stdin=subprocess.DEVNULL,
                             stdout=subprocess.DEVNULL, stderr=open(os.path.join(self.base, log), "ab"))
        self.procs.append(p)
        return p

    def start(self, timeout: float = 60) -> "DockerDaemon":
        subprocess.run(["ip", "netns", "add", self.netns], check=True)
        subprocess.run(["ip", "-n", self.netns, "link", "set", "lo", "up"], check=True)
        self._spawn(["containerd", "--config", os.path.join(self.base, "containerd.toml")], "containerd.log")
        deadline = time.monotonic() + timeout
        while not os.path.exists(self.ctd_sock) and time.monotonic() < deadline:
            time.sleep(0.05)
        self._spawn(["dockerd", "--containerd", self.ctd_sock, "--data-root", f"{self.base}/docker",
                     "--exec-root", f"{self.base}/exec", "--pidfile", f"{self.base}/docker.pid",
                     "-H", f"unix://{self.sock}", "--config-file", f"{self.base}/daemon.json"], "dockerd.log")
        while time.monotonic() < deadline:
            if self.docker("version").returncode == 0:
                return self
            time.sleep(0.2)
        raise RuntimeError(f"dockerd did not answer within {timeout} s: {open(self.base + '/dockerd.log').read()[-2000:]}")

    def docker(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
        return subprocess.run(["docker", "-H", f"unix://{self.sock}", *args], capture_output=True, text=True,
                              timeout=timeout, stdin=subprocess.DEVNULL)

    def in_netns(self, *argv: str, timeout: float = 30) -> subprocess.CompletedProcess:
        return subprocess.run(["nsenter", f"--net=/run/netns/{self.netns}", *argv], capture_output=True, text=True,
                              timeout=timeout)

    def stop(self) -> None:
        listed = self.docker("ps", "-aq", timeout=30).stdout.split() if self.procs else []
        if listed:
            self.docker("rm", "-f", *listed, timeout=120)
        for p in reversed(self.procs):  # dockerd first, then containerd
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
                try:
                    p.wait(30)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait(10)
        subprocess.run(["ip", "netns", "del", self.netns], capture_output=True)
        # dockerd's parent cgroup (/docker): only the top dir, only if new and empty - another
        # worker's dockerd may be using it, and rmdir of a busy cgroup just fails
        for d in cgroupdirs.snapshot(max_depth=2) - self.cgroups_before:
            if os.path.basename(d) == "docker":
                try:
                    os.rmdir(d)
                except OSError:
                    pass
        with open("/proc/self/mountinfo") as f:  # shim leftovers, if a daemon had to be killed
            stale = sorted((line.split()[4] for line in f if self.base in line.split()[4]), reverse=True)
        for point in stale:
            subprocess.run(["umount", "-l", point], capture_output=True)
