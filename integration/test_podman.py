"""podman (rootful, conmon as the shim) driving sysbox-runc, and what podman's cleanup needs.

podman's storage, run root and temp dir are the test's own; the container network is `none`
(podman's bridge would touch the host's).  This host's root lacks CAP_SYS_RESOURCE, so the
RLIMIT_NOFILE/NPROC of 1048576 podman asks for by default cannot be set by any runtime (runc
fails the same way); the tests ask for limits under the host's.
"""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest

from integration import cgroupdirs
from integration.cleanup import remove_tree
from integration.conftest import CACHE, SYSBOX_RUNC, mounts, wait_for
from sysbox import images
from sysbox.runc import state as runc_state

pytestmark = pytest.mark.skipif(not shutil.which("podman"), reason="podman is not installed (apt-get install podman)")
IMAGE = "localhost/local/busybox:latest"
LIMITS = ["--ulimit", "nofile=1024:1024", "--ulimit", "nproc=4096:4096"]


class Podman:
    def __init__(self, base: str, mgr, fs, state_dir: str) -> None:
        self.base, self.state_dir = base, state_dir
        self.runroot = f"/run/sbx-podman-{os.getpid()}"  # podman refuses a runroot over 50 characters
        self.argv = ["podman", "--root", f"{base}/root", "--runroot", self.runroot, "--tmpdir", f"{base}/tmp",
                     "--storage-driver", "overlay", "--cgroup-manager", "cgroupfs", "--events-backend", "file",
                     "--runtime", SYSBOX_RUNC, "--runtime-flag", f"mgr-socket={mgr.socket}",
                     "--runtime-flag", f"fs-socket={fs.socket}", "--runtime-flag", f"sysbox-state={state_dir}"]

    def __call__(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
        return subprocess.run(self.argv + list(args), capture_output=True, text=True, timeout=timeout,
                              stdin=subprocess.DEVNULL)


@pytest.fixture(scope="module")
def podman(session_mgr, session_fs, sysbox_state, tmp_path_factory):
    cgroups_before = cgroupdirs.snapshot()
    p = Podman(str(tmp_path_factory.mktemp("podman")), session_mgr, session_fs, sysbox_state)
    out = p("load", "-i", images.build("busybox", cache=CACHE)["docker_archive"])
    assert out.returncode == 0, out.stderr
    try:
        yield p
    finally:
        listed = p("ps", "-aq").stdout.split()
        if listed:
            p("rm", "-f", "-t", "0", *listed)
        p("system", "reset", "--force", timeout=120)
        stale = sorted((m for m in mounts() if m.startswith(p.base) or m.startswith(p.runroot)), reverse=True)
        for point in stale:
            subprocess.run(["umount", "-l", point], capture_output=True)
        remove_tree(p.base, p.runroot)
        left = cgroupdirs.prune(cgroups_before, ("libpod",))  # podman's cgroupfs manager leaves libpod_parent
        assert not left, f"cgroups left behind: {left}"


def registered(mgr) -> set[str]:
    return {c["id"] for c in mgr.call("status")["containers"]}



def no_trace(podman, mgr, fs, full_id: str) -> bool:
    root = "/run/runc"
    cdir = runc_state.container_dir({"root": root, "sysbox-state": podman.state_dir}, full_id)
    return (full_id not in registered(mgr) and full_id not in {c["id"] for c in fs.call("status")["containers"]}
            and not os.path.exists(cdir) and not [m for m in mounts() if full_id in m])


def test_podman_run_rm_then_nothing_left(podman, session_mgr, session_fs, cid, tmp_path):
    cidfile = tmp_path / "cid"
    out = podman("run", "--rm", "--cidfile", str(cidfile), "--network", "none", *LIMITS, IMAGE,
                 "sh", "-c", "cat /proc/self/uid_map; cat /proc/uptime")
    assert out.returncode == 0, out.stderr
    inside, outside, size, uptime = out.stdout.split()[:4]
    assert (inside, size) == ("0", "65536") and int(outside) >= 1 << 24
    assert float(uptime) < 60  # the container's, not the host's
    # podman's cleanup process deletes without the --runtime-flag options given to create:
    # sysbox-runc finds its state through runc's record, so nothing is left behind
    assert wait_for(lambda: no_trace(podman, session_mgr, session_fs, cidfile.read_text().strip()), 20)


def test_podman_detached_exec_stop_rm(podman, session_mgr, session_fs, cid):
    out = podman("run", "-d", "--name", cid, "--network", "none", *LIMITS, IMAGE, "sleep", "1000")
    assert out.returncode == 0, out.stderr
    full_id = out.stdout.strip()
    try:
        assert full_id in registered(session_mgr)
        ex = podman("exec", cid, "cat", "/proc/self/uid_map")
        assert ex.returncode == 0 and ex.stdout.split()[0] == "0", ex.stderr
        ps = podman("ps", "--format", "{{.Names}} {{.Status}}")
        assert any(line.startswith(cid + " Up") for line in ps.stdout.splitlines()), ps.stdout
        assert podman("stop", "-t", "1", cid).returncode == 0
    finally:
        rm = podman("rm", "-f", cid)
    assert rm.returncode == 0, rm.stderr
    assert wait_for(lambda: no_trace(podman, session_mgr, session_fs, full_id), 20)


@pytest.fixture
def test_netns():
    """podman's default network (a CNI bridge, NAT rules) built inside a network namespace of
    the test's own, so nothing of it touches the host's network."""
    name = f"sbxpod{os.getpid()}"
    subprocess.run(["ip", "netns", "add", name], check=True)
    try:
        subprocess.run(["ip", "-n", name, "link", "set", "lo", "up"], check=True)
        yield name
    finally:
        subprocess.run(["ip", "netns", "del", name], capture_output=True)


def test_podman_default_network_with_its_default_sysctls(podman, session_mgr, session_fs, test_netns, tmp_path):
    """podman makes the container's netns outside its user namespace and asks for
    net.ipv4.ping_group_range (default_sysctls): runc alone failed with EACCES."""
    cidfile = tmp_path / "cid"
    argv = ["nsenter", f"--net=/run/netns/{test_netns}", *podman.argv, "run", "--rm", "--cidfile", str(cidfile), *LIMITS,
            IMAGE, "sh", "-c", "cat /proc/sys/net/ipv4/ping_group_range; ls /sys/class/net; cat /proc/self/uid_map"]
    out = subprocess.run(argv, capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)
    assert out.returncode == 0, out.stderr
    words = out.stdout.split()
    assert words[:2] == ["0", "0"]  # podman's default, written in podman's netns
    assert "eth0" in words and "lo" in words  # the bridge's veth end
    assert words[-3:-2] == ["0"] and words[-1] == "65536"
    assert wait_for(lambda: no_trace(podman, session_mgr, session_fs, cidfile.read_text().strip()), 20)
    assert not os.path.exists("/sys/class/net/cni-podman0")  # the bridge was made in the test's netns
