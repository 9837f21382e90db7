"""`sysbox demo`: what the README's first command shows - a system container booting systemd,
with Docker running inside, in an unprivileged container.

It starts its own sysbox-mgr and sysbox-fs on private paths (/run/sysbox-demo,
/var/lib/sysbox-demo), presents the debian-systemd image through an overlay as containerd
would, boots it with sysbox-runc, prints what a user wants to see, and cleans everything up
(or, with --keep, leaves it running and says how to get a shell and how to clean up).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time

from sysbox import images
from sysbox.errors import SysboxError
from sysbox.ipc import IPCError, LineClient
from sysbox.oci.bundle import write_bundle

RUN = "/run/sysbox-demo"
DATA = "/var/lib/sysbox-demo"
CID = "sysbox-demo"
STATE_FILE = os.path.join(RUN, "demo.json")


def _bin(name: str) -> str:
    here = os.path.join(os.path.dirname(sys.executable), name)
    return here if os.path.exists(here) else (shutil.which(name) or name)


def _runtime() -> list[str]:
    return [_bin("sysbox-runc"), "--mgr-socket", f"{RUN}/mgr.sock", "--fs-socket", f"{RUN}/fs.sock",
            "--sysbox-state", f"{RUN}/runc-state", "--root", f"{RUN}/runc"]


def _exec(*cmd: str, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run(["runc", "--root", f"{RUN}/runc", "exec", CID, *cmd], capture_output=True, text=True,
                          timeout=timeout, stdin=subprocess.DEVNULL, check=False)


def _start_daemon(argv: list[str], socket: str, log: str) -> int:
    proc = subprocess.Popen(argv + ["--log", log], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SysboxError(f"{os.path.basename(argv[0])} exited at start; see {log}")
        try:
            with LineClient(socket, timeout=5) as c:
                c.call("ping")
            return proc.pid
        except IPCError:
            time.sleep(0.05)
    raise SysboxError(f"{os.path.basename(argv[0])} did not answer within 20 s; see {log}")


def _say(title: str, text: str = "") -> None:
    print(f"  {title:<28} {text}", flush=True)


def run(cache: str = images.DEFAULT_CACHE, keep: bool = False) -> int:
    if os.path.exists(STATE_FILE):
        cleanup()
    image = images.build("debian-systemd", cache=cache)
    busybox = images.build("busybox", cache=cache)
    for d in (RUN, DATA):
        os.makedirs(d, mode=0o711, exist_ok=True)
        os.chmod(d, 0o711)
    state: dict = {"pids": [], "overlay": f"{DATA}/rootfs"}
    with open(STATE_FILE, "w") as f:
        json.dump(state, f)
    try:
        print("starting sysbox-mgr and sysbox-fs ...", flush=True)
        state["pids"].append(_start_daemon(
            [_bin("sysbox-mgr"), "--socket", f"{RUN}/mgr.sock", "--pid-file", f"{RUN}/mgr.pid",
             "--data-root", f"{DATA}/mgr"], f"{RUN}/mgr.sock", f"{DATA}/mgr.log"))
        state["pids"].append(_start_daemon(
            [_bin("sysbox-fs"), "--socket", f"{RUN}/fs.sock", "--pid-file", f"{RUN}/fs.pid",
             "--mountpoint", f"{RUN}/fs", "--seccomp-socket", f"{RUN}/fs-seccomp.sock",
             "--state-dir", f"{RUN}/fs-state", "--holder-socket", ""], f"{RUN}/fs.sock", f"{DATA}/fs.log"))
        with open(STATE_FILE, "w") as f:
            json.dump(state, f)
        for d in ("upper", "work", "rootfs"):
            os.makedirs(f"{DATA}/{d}", exist_ok=True)
        subprocess.run(["mount", "-t", "overlay", "overlay", "-o",
                        f"lowerdir={image['rootfs']},upperdir={DATA}/upper,workdir={DATA}/work",
                        f"{DATA}/rootfs"], check=True)
        spec = write_bundle(f"{DATA}/bundle", f"{DATA}/rootfs", ["/sbin/init"], hostname=CID)
        spec["mounts"].append({"destination": "/images", "type": "bind",
                               "source": os.path.dirname(busybox["tarball"]), "options": ["rbind", "ro"]})
        spec["linux"].setdefault("resources", {})["memory"] = {"limit": 1 << 30}
        with open(f"{DATA}/bundle/config.json", "w") as f:
            json.dump(spec, f)

        print(f"booting {CID} (debian bookworm + systemd + docker) with sysbox-runc, no --privileged ...", flush=True)
        t0 = time.monotonic()
        subprocess.run(_runtime() + ["run", "-d", "--bundle", f"{DATA}/bundle", CID], check=True,
                       stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
        status = ""
        while time.monotonic() - t0 < 90:
            status = _exec("systemctl", "is-system-running").stdout.strip()
            if status in ("running", "degraded"):
                break
            time.sleep(0.1)
        boot = time.monotonic() - t0
        units = _exec("systemctl", "--failed", "--no-legend", "--plain").stdout.splitlines()
        failed = [line.split()[0] for line in units if line.strip()]
        pid = json.loads(subprocess.run(_runtime() + ["state", CID], capture_output=True, check=True).stdout)["pid"]
        uid_map = _exec("cat", "/proc/self/uid_map").stdout.split()
        print()
        _say("systemd:", f"{status} after {boot:.1f} s, failed units: {', '.join(failed) or 'none'}")
        _say("root inside is, on the host:", f"uid {uid_map[1]} (init runs as uid {os.stat(f'/proc/{pid}').st_uid}); "
             f"uid_map: {' '.join(uid_map)}")
        _say("uptime inside / host:", f"{_exec('cat', '/proc/uptime').stdout.split()[0]} s / "
             f"{_read('/proc/uptime').split()[0]} s (sysbox-fs)")
        _say("memory (free -m):", _exec("sh", "-c", "free -m | awk '/Mem:/ {print $2\" MiB total\"}'").stdout.strip()
             + " (the container's 1 GiB limit)")
        host_panic = _read("/proc/sys/kernel/panic").strip()
        inside = _exec("sh", "-c", "sysctl -qw kernel.panic=42 && sysctl -n kernel.panic").stdout.strip()
        _say("sysctl kernel.panic=42:", f"inside reads {inside}; the host still has "
             f"{_read('/proc/sys/kernel/panic').strip()} (was {host_panic})")
        docker = _exec("sh", "-c", "systemctl is-active docker && docker info --format '{{.Driver}}' && "
                                   "docker load -i /images/busybox.docker.tar >/dev/null && "
                                   "docker tag local/busybox demo/busybox && "
                                   "docker run --rm demo/busybox sh -c 'echo hello from a container inside "
                                   "$(hostname -s 2>/dev/null || true) the system container'", timeout=120)
        lines = docker.stdout.splitlines()
        _say("docker inside:",
             f"dockerd {lines[0] if lines else '?'}, storage driver {lines[1] if len(lines) > 1 else '?'}")
        _say("inner docker run:", lines[2] if len(lines) > 2 else f"failed: {docker.stderr.strip()[:200]}")
        print()
        if keep:
            print(f"It keeps running. A shell:   runc --root {RUN}/runc exec -t {CID} bash")
            print("Clean up:                    sysbox demo --cleanup")
            return 0
        print("stopping it (SIGRTMIN+3, systemd's clean shutdown) and cleaning up ...", flush=True)
        print("(next time: `sysbox demo --keep` leaves it running; "
              f"a shell: runc --root {RUN}/runc exec -t {CID} bash)")
    except BaseException:
        cleanup()
        raise
    cleanup()
    return 0 if status in ("running", "degraded") and len(lines) > 2 else 1


def _read(path: str) -> str:
    with open(path) as f:
        return f.read()


def cleanup() -> None:  # noqa: C901 - each step is independent and tolerant, in teardown order
    """Stop and delete the demo container, unmount its rootfs, stop the daemons it started."""
    try:
        with open(STATE_FILE) as f:
            state = json.load(f)
    except (OSError, ValueError):
        state = {"pids": [], "overlay": f"{DATA}/rootfs"}
    runtime = _runtime()
    if subprocess.run(runtime + ["state", CID], capture_output=True, check=False).returncode == 0:
        subprocess.run(runtime + ["kill", CID, "37"], capture_output=True, check=False)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            out = subprocess.run(runtime + ["state", CID], capture_output=True, text=True, check=False).stdout
            if '"stopped"' in out:
                break
            time.sleep(0.1)
        subprocess.run(runtime + ["delete", "--force", CID], capture_output=True, check=False)
    overlay = state.get("overlay")
    while overlay and os.path.ismount(overlay):
        subprocess.run(["umount", overlay], capture_output=True, check=False)
    for pid in state.get("pids", []):
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            continue
        for _ in range(100):
            try:
                os.kill(pid, 0)
                time.sleep(0.05)
            except ProcessLookupError:
                break
    from sysbox.linux import syscalls as sc
    from sysbox.linux.tree import mounts_under

    for path in (DATA, RUN):
        for point in sorted(mounts_under(path), reverse=True):  # never rm through a mount
            try:
                sc.umount2(point, sc.MNT_DETACH)
            except OSError:
                pass
        if not mounts_under(path):
            subprocess.run(["rm", "-rf", "--one-file-system", path], capture_output=True, check=False)
    print("cleaned up: container deleted, rootfs unmounted, daemons stopped")
