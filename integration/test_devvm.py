"""`sysbox run|ps|exec|stop|start|rm`: dev VMs with no Docker, images through skopeo and umoci,
networking through the CNI plugins.

The CLI runs inside a network namespace the test creates (`nsenter --net`), so the CNI bridge,
its iptables rules and published ports exist only there; traffic goes to that namespace.
"""

from __future__ import annotations

import json
import os
import subprocess
import time

import pytest

from integration.cleanup import remove_tree
from integration.conftest import CACHE, VENV_BIN, mounts, wait_for
from sysbox import images

SYSBOX = os.path.join(VENV_BIN, "sysbox")


class DevVM:
    def __init__(self, base: str, mgr, fs, state: str) -> None:
        self.netns = f"sbxdv{os.getpid()}"
        self.store = os.path.join(base, "store")
        self.run_root = f"/run/sbx-devvm-{os.getpid()}"
        self.opts = ["--store", self.store, "--run-root", self.run_root, "--mgr-socket", mgr.socket,
                     "--fs-socket", fs.socket, "--sysbox-state", state, "--bridge", "sbxdv0",
                     "--subnet", "10.77.0.0/24"]

    def __call__(self, verb: str, *args: str, timeout: float = 180) -> subprocess.CompletedProcess:
        return subprocess.run(["nsenter", f"--net=/run/netns/{self.netns}", SYSBOX, verb, *self.opts, *args],
                              capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)

    def in_netns(self, *argv: str, timeout: float = 30) -> subprocess.CompletedProcess:
        return subprocess.run(["nsenter", f"--net=/run/netns/{self.netns}", *argv], capture_output=True, text=True,
                              timeout=timeout)

    def ps(self) -> dict[str, dict]:
        out = self("ps", "-a", "--json")
        assert out.returncode == 0, out.stderr
        return {r["name"]: r for r in json.loads(out.stdout)}


@pytest.fixture
def devvm(session_mgr, session_fs, sysbox_state, tmp_path):
    d = DevVM(str(tmp_path), session_mgr, session_fs, sysbox_state)
    subprocess.run(["ip", "netns", "add", d.netns], check=True)
    registered_before = {c["id"] for c in session_mgr.call("status")["containers"]}
    try:
        subprocess.run(["ip", "-n", d.netns, "link", "set", "lo", "up"], check=True)
        yield d
    finally:
        for name in list(d.ps()) if os.path.isdir(d.store) else []:
            d("rm", "-f", name)
        subprocess.run(["ip", "netns", "del", d.netns], capture_output=True)
        left_mounts = [m for m in mounts() if m.startswith(d.store) or m.startswith(d.run_root)]  # incl. netns pins
        for m in sorted(left_mounts, reverse=True):
            subprocess.run(["umount", "-l", m], capture_output=True)
        remove_tree(d.run_root)
        assert not left_mounts, f"mounts left: {left_mounts}"
        left = {c["id"] for c in session_mgr.call("status")["containers"]} - registered_before
        assert not left, f"manager still holds {left}"



def test_busybox_vm_with_port_and_volume_through_stop_start_rm(devvm, tmp_path):
    vol = tmp_path / "shared"
    vol.mkdir()
    (vol / "from-host").write_text("host-data\n")
    archive = images.build("busybox", cache=CACHE)["docker_archive"]
    out = devvm("run", "--name", "web", "-p", "8080:80", "-v", f"{vol}:/shared", archive,
                "sh", "-c", "cp /shared/from-host /www.html; echo written > /shared/from-vm; "
                            "mkdir -p /www && cp /www.html /www/index.html && exec httpd -f -p 80 -h /www")
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "web"
    assert "importing busybox.docker.tar" in out.stderr and "unpacking web: done" in out.stderr  # progress
    row = devvm.ps()["web"]  # a new CLI process reads the state the first one left
    assert row["status"] == "running" and row["ip"].startswith("10.77.0.") and row["ports"] == "8080->80/tcp"
    gateway = "10.77.0.1"
    page = wait_for(lambda: devvm.in_netns("wget", "-qO-", f"http://{gateway}:8080/").stdout, 20)
    assert page == "host-data\n"
    assert devvm.in_netns("wget", "-qO-", f"http://{row['ip']}:80/").stdout == "host-data\n"
    assert (vol / "from-vm").read_text() == "written\n"
    assert (vol / "from-vm").stat().st_uid == 0  # idmapped bind: container root writes as host root's view
    ex = devvm("exec", "web", "cat", "/proc/self/uid_map")
    assert ex.returncode == 0 and ex.stdout.split()[0::2] == ["0", "65536"], ex.stderr

    assert devvm("stop", "-t", "1", "web").returncode == 0
    assert devvm.ps()["web"]["status"] == "exited"
    assert devvm.in_netns("wget", "-T", "2", "-qO-", f"http://{gateway}:8080/").returncode != 0
    assert devvm("start", "web").returncode == 0
    assert devvm.ps()["web"]["status"] == "running"
    assert wait_for(lambda: devvm.in_netns("wget", "-qO-", f"http://{gateway}:8080/").stdout, 20) == "host-data\n"

    refused = devvm("rm", "web")
    assert refused.returncode == 1 and "is running" in refused.stderr
    assert devvm("rm", "-f", "web").returncode == 0
    assert devvm.ps() == {}
    assert not os.path.exists(os.path.join(devvm.store, "containers", "web"))


def test_systemd_vm_boots_and_gives_a_terminal(devvm):
    archive = images.build("debian-systemd", cache=CACHE)["docker_archive"]
    out = devvm("run", "--name", "dev", archive, timeout=300)
    assert out.returncode == 0, out.stderr
    status = wait_for(lambda: devvm("exec", "dev", "systemctl", "is-system-running").stdout.strip()
                      in ("running", "degraded"), 60)
    assert status, devvm("exec", "dev", "systemctl", "--failed", "--no-legend").stdout
    # `sysbox exec -it dev bash`, with a real terminal (script(1) provides the pty)
    cmd = " ".join([SYSBOX, "exec", "-it", *devvm.opts, "dev", "bash", "-c", "'tty; echo in-vm-$((6*7))'"])
    tty = subprocess.run(["nsenter", f"--net=/run/netns/{devvm.netns}", "script", "-qec", cmd, "/dev/null"],
                         capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
    assert tty.returncode == 0, tty.stdout + tty.stderr
    assert "/dev/pts/" in tty.stdout and "in-vm-42" in tty.stdout
    t0 = time.monotonic()
    assert devvm("stop", "-t", "20", "dev").returncode == 0
    assert time.monotonic() - t0 < 15  # systemd shut down on its signal, not at the SIGKILL
    assert devvm("rm", "dev").returncode == 0


@pytest.mark.parametrize("args,msg", [
    (["--name", "bad name!", "IMAGE", "true"], "--name 'bad name!'"),
    (["-p", "80", "IMAGE", "true"], "-p 80: expected [HOSTIP:]HOSTPORT:CONTAINERPORT"),
    (["-p", "8080:99999", "IMAGE", "true"], "ports 1-65535"),
    (["-v", "relative:/x", "IMAGE", "true"], "-v relative:/x: source relative must be an existing absolute path"),
    (["-v", "/tmp:/../etc", "IMAGE", "true"], "destination /../etc must be an absolute path without '..'"),
    (["/nonexistent/image.tar", "true"], "image /nonexistent/image.tar: not a docker-archive tarball"),
])
def test_bad_input_is_one_line_and_leaves_nothing(devvm, args, msg):
    archive = images.build("busybox", cache=CACHE)["docker_archive"]
    out = devvm("run", *[archive if a == "IMAGE" else a for a in args])
    assert out.returncode == 1
    errors = [line for line in out.stderr.splitlines() if line.startswith("sysbox:")]
    assert len(errors) == 1 and msg in errors[0], out.stderr
    assert devvm.ps() == {}


def test_duplicate_name_refused(devvm):
    archive = images.build("busybox", cache=CACHE)["docker_archive"]
    assert devvm("run", "--name", "one", archive, "sleep", "600").returncode == 0
    again = devvm("run", "--name", "one", archive, "sleep", "600")
    assert again.returncode == 1 and "container one already exists" in again.stderr
    assert list(devvm.ps()) == ["one"]
