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
def podman_netns():
    """podman's default network (a CNI bridge, NAT rules) built inside a network namespace of
    the test's own, so nothing of it touches the host's network."""
    name = f"sbxpod{os.getpid()}"
    subprocess.run(["ip", "netns", "add", name], check=True)
    try:
        subprocess.run(["ip", "-n", name, "link", "set", "lo", "up"], check=True)
        yield name
    finally:
        subprocess.run(["ip", "netns", "del", name], capture_output=True)


def test_podman_default_network_with_its_default_sysctls(podman, session_mgr, session_fs, podman_netns, tmp_path):
    """podman makes the container's netns outside its user namespace and asks for
    net.ipv4.ping_group_range (default_sysctls): runc alone failed with EACCES."""
    cidfile = tmp_path / "cid"
    argv = ["nsenter", f"--net=/run/netns/{podman_netns}", *podman.argv, "run", "--rm", "--cidfile", str(cidfile), *LIMITS,
            IMAGE, "sh", "-c", "cat /proc/sys/net/ipv4/ping_group_range; ls /sys/class/net; cat /proc/self/uid_map"]
    out = subprocess.run(argv, capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)
    assert out.returncode == 0, out.stderr
    words = out.stdout.split()
    assert words[:2] == ["0", "0"]  # podman's default, written in podman's netns
    assert "eth0" in words and "lo" in words  # the bridge's veth end
    assert words[-3:-2] == ["0"] and words[-1] == "65536"
    assert wait_for(lambda: no_trace(podman, session_mgr, session_fs, cidfile.read_text().strip()), 20)
    assert not os.path.exists("/sys/class/net/cni-podman0")  # the bridge was made in the test's netns


def in_netns(netns: str, argv: list[str], timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(["nsenter", f"--net=/run/netns/{netns}", *argv], capture_output=True, text=True,
                          timeout=timeout, stdin=subprocess.DEVNULL)


def test_podman_detached_published_port_exec_stop_rm_on_the_default_network(podman, session_mgr, session_fs,
                                                                              podman_netns, cid):
    serve = "mkdir -p /srv && echo hello-from-sysbox > /srv/index.html && exec httpd -f -p 8080 -h /srv"
    out = in_netns(podman_netns, [*podman.argv, "run", "-d", "--name", cid, "-p", "18080:8080", *LIMITS, IMAGE,
                                "sh", "-c", serve])
    assert out.returncode == 0, out.stderr
    full_id = out.stdout.strip()
    try:
        ex = in_netns(podman_netns, [*podman.argv, "exec", cid, "sh", "-c", "ls /sys/class/net; id -u"])
        assert ex.returncode == 0 and "eth0" in ex.stdout.split() and ex.stdout.split()[-1] == "0", ex.stderr
        gateway = in_netns(podman_netns, ["ip", "-4", "-o", "addr", "show", "cni-podman0"]).stdout.split()[3]
        url = f"http://{gateway.split('/')[0]}:18080/"
        got = wait_for(lambda: in_netns(podman_netns, ["busybox", "wget", "-qO-", url], timeout=10).stdout, timeout=20)
        assert got.strip() == "hello-from-sysbox"  # through podman's published port, in the test's netns
        assert in_netns(podman_netns, [*podman.argv, "stop", "-t", "1", cid]).returncode == 0
    finally:
        rm = in_netns(podman_netns, [*podman.argv, "rm", "-f", cid])
    assert rm.returncode == 0, rm.stderr
    assert wait_for(lambda: no_trace(podman, session_mgr, session_fs, full_id), 20)


KUBE = """apiVersion: v1
kind: Pod
metadata:
  name: {name}
spec:
  containers:
  - name: one
    image: {image}
    command: ["sleep", "600"]
  - name: two
    image: {image}
    command: ["sleep", "600"]
"""


def test_podman_play_kube_of_a_pod_with_two_containers(podman, session_mgr, podman_netns, tmp_path, cid):
    """The infra container is a sysbox container too; with no pause image reachable offline it
    is the local busybox image sleeping (containers.conf infra_image)."""
    from integration.test_cri import pause_archive

    archive = pause_archive(images.build("busybox", cache=CACHE)["docker_archive"], str(tmp_path / "pause.tar"))
    assert podman("load", "-i", archive).returncode == 0
    conf = tmp_path / "containers.conf"
    conf.write_text('[containers]\ndefault_ulimits = ["nofile=1024:1024", "nproc=4096:4096"]\n'  # see LIMITS
                    '[engine]\ninfra_image = "localhost/local/pause:latest"\n')  # its Cmd sleeps
    kube = tmp_path / "pod.yaml"
    kube.write_text(KUBE.format(name=cid, image=IMAGE))
    env = {**os.environ, "CONTAINERS_CONF": str(conf)}
    argv = ["nsenter", f"--net=/run/netns/{podman_netns}", *podman.argv]
    out = subprocess.run([*argv, "play", "kube", str(kube)], capture_output=True, text=True, env=env, timeout=120,
                         stdin=subprocess.DEVNULL)
    try:
        assert out.returncode == 0, out.stderr
        ps = subprocess.run([*argv, "ps", "--pod", "--format", "{{.Names}} {{.Status}}"], capture_output=True,
                            text=True, env=env, timeout=60).stdout
        running = [line.split()[0] for line in ps.splitlines() if " Up" in line]
        assert f"{cid}-one" in running and f"{cid}-two" in running, ps
        for c in ("one", "two"):
            ex = subprocess.run([*argv, "exec", f"{cid}-{c}", "cat", "/proc/self/uid_map"], capture_output=True,
                                text=True, env=env, timeout=60)
            assert ex.returncode == 0 and ex.stdout.split()[0] == "0" and ex.stdout.split()[2] == "65536", ex.stderr
        uid_maps = {subprocess.run([*argv, "exec", f"{cid}-{c}", "cat", "/proc/self/uid_map"], capture_output=True,
                                   text=True, env=env, timeout=60).stdout.split()[1] for c in ("one", "two")}
        assert len(uid_maps) == 2  # each container of the pod has its own id range
    finally:
        down = subprocess.run([*argv, "play", "kube", "--down", str(kube)], capture_output=True, text=True, env=env,
                              timeout=120)
    assert down.returncode == 0, down.stderr


@pytest.fixture
def runc_conf(session_mgr, session_fs, sysbox_state):
    """/etc/sysbox/sysbox-runc.conf pointing at this session's daemons, for sysbox-runc started
    bare (podman hands the runtime no environment of ours); the previous file comes back after."""
    from sysbox.runc.settings import DEFAULT_CONFIG

    old = open(DEFAULT_CONFIG).read() if os.path.exists(DEFAULT_CONFIG) else None
    made_dir = not os.path.isdir(os.path.dirname(DEFAULT_CONFIG))
    os.makedirs(os.path.dirname(DEFAULT_CONFIG), exist_ok=True)
    with open(DEFAULT_CONFIG, "w") as f:
        f.write(f"mgr-socket = {session_mgr.socket}\nfs-socket = {session_fs.socket}\n"
                f"sysbox-state = {sysbox_state}\n")
    try:
        yield DEFAULT_CONFIG
    finally:
        if old is None:
            os.unlink(DEFAULT_CONFIG)
            if made_dir:
                os.rmdir(os.path.dirname(DEFAULT_CONFIG))
        else:
            with open(DEFAULT_CONFIG, "w") as f:
                f.write(old)


@pytest.mark.serial  # the config file is host-global while it lasts
def test_the_readme_podman_line_as_written(runc_conf, podman_netns, tmp_path):
    """`podman --runtime $(which sysbox-runc) run --rm IMAGE`, word for word, on podman's default
    network.  Only the setting files differ from a user's machine: podman's storage and config
    (CONTAINERS_STORAGE_CONF, CONTAINERS_CONF) and sysbox-runc's (runc_conf) point at the test's
    own, and it runs in a network namespace the test made."""
    readme = open(os.path.join(os.path.dirname(os.path.dirname(__file__)), "README.md")).read()
    line = "podman --runtime $(which sysbox-runc) run --rm IMAGE"
    assert line in readme
    storage = tmp_path / "storage.conf"
    storage.write_text(f'[storage]\ndriver = "overlay"\ngraphroot = "{tmp_path}/graph"\n'
                       f'runroot = "/run/sbx-readme-{os.getpid()}"\n')
    conf = tmp_path / "containers.conf"
    conf.write_text('[containers]\ndefault_ulimits = ["nofile=1024:1024", "nproc=4096:4096"]\n'  # see LIMITS
                    '[engine]\ncgroup_manager = "cgroupfs"\nevents_logger = "file"\n'
                    f'tmp_dir = "{tmp_path}/tmp"\n')
    env = {"PATH": f"{os.path.dirname(SYSBOX_RUNC)}:{os.environ['PATH']}", "CONTAINERS_STORAGE_CONF": str(storage),
           "CONTAINERS_CONF": str(conf)}
    shell = ["nsenter", f"--net=/run/netns/{podman_netns}", "sh", "-c"]
    try:
        load = subprocess.run(shell + [f"podman load -i {images.build('busybox', cache=CACHE)['docker_archive']}"],
                              env=env, capture_output=True, text=True, timeout=120)
        assert load.returncode == 0, load.stderr
        out = subprocess.run(shell + [line.replace("IMAGE", IMAGE) + " cat /proc/self/uid_map /proc/uptime"],
                             env=env, capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)
        assert out.returncode == 0, out.stderr
        words = out.stdout.split()
        assert words[0] == "0" and words[2] == "65536" and int(words[1]) >= 1 << 24 and float(words[3]) < 60
    finally:
        subprocess.run(shell + ["podman system reset --force"], env=env, capture_output=True, timeout=120)
        stale = sorted((m for m in mounts() if m.startswith(str(tmp_path)) or "sbx-readme" in m), reverse=True)
        for point in stale:
            subprocess.run(["umount", "-l", point], capture_output=True)
        remove_tree(str(tmp_path / "graph"), f"/run/sbx-readme-{os.getpid()}")
