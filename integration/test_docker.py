"""Docker itself driving sysbox-runc: application containers, and system containers with
systemd and Docker (and containerd) inside.  containerd and dockerd are Debian's, started by
the fixture in a network namespace of their own (integration/dockerd.py)."""

from __future__ import annotations

import os
import time

import pytest

from integration.conftest import CACHE, SYSBOX_RUNC, wait_for
from integration.dockerd import DockerDaemon
from sysbox import images


@pytest.fixture(scope="session")
def docker(session_mgr, session_fs, sysbox_state, tmp_path_factory):
    d = DockerDaemon(str(tmp_path_factory.mktemp("docker")), SYSBOX_RUNC,
                     ["--mgr-socket", session_mgr.socket, "--fs-socket", session_fs.socket,
                      "--sysbox-state", sysbox_state])
    try:  # stop() also undoes a start that failed half-way
        d.start()
        out = d.docker("import", images.build("busybox", cache=CACHE)["tarball"], "local/busybox")
        assert out.returncode == 0, out.stderr
        yield d
    finally:
        d.stop()



def test_docker_load_archive_and_image_config(docker, cid):
    d = docker
    arch = images.build("busybox", cache=CACHE)["docker_archive"]
    out = d.docker("load", "-i", arch)
    assert out.returncode == 0 and "local/busybox:latest" in out.stdout, out.stderr
    assert d.docker("run", "--rm", "--runtime=sysbox-runc", "local/busybox:latest", "sh", "-c", "echo $PATH").stdout.strip() \
        == "/usr/sbin:/usr/bin:/sbin:/bin"


def test_application_container_behaves_as_with_runc(docker, cid, tmp_path):
    d = docker
    vol = tmp_path / "vol"
    vol.mkdir()
    run = d.docker("run", "-d", "--runtime=sysbox-runc", "--name", cid, "-e", "FOO=bar", "-w", "/tmp",
                   "-v", f"{vol}:/data", "-p", "127.0.0.1:18080:80", "local/busybox", "sh", "-c",
                   "echo started; mkdir -p /www && echo hello-http > /www/index.html && exec httpd -f -p 80 -h /www")
    assert run.returncode == 0, run.stderr
    assert d.docker("exec", cid, "sh", "-c", "echo $FOO; pwd").stdout.split() == ["bar", "/tmp"]
    assert d.docker("exec", "-u", "1000:1000", cid, "id", "-u").stdout.strip() == "1000"
    assert d.docker("exec", cid, "cat", "/proc/self/uid_map").stdout.split()[0:3:2] == ["0", "65536"]
    assert d.docker("exec", cid, "sh", "-c", "echo x > /data/written").returncode == 0
    assert os.stat(vol / "written").st_uid == 0  # -v is idmapped: container root writes as host 0
    assert wait_for(lambda: "started" in d.docker("logs", cid).stdout, 10)
    page = wait_for(lambda: d.in_netns("busybox", "wget", "-qO-", "http://127.0.0.1:18080/").stdout, 10)
    assert page.strip() == "hello-http"
    stats = d.docker("stats", "--no-stream", "--format", "{{.Name}} {{.PIDs}}", cid)
    assert stats.returncode == 0 and stats.stdout.split()[0] == cid
    assert d.docker("pause", cid).returncode == 0
    assert d.docker("inspect", "-f", "{{.State.Paused}}", cid).stdout.strip() == "true"
    assert d.docker("unpause", cid).returncode == 0
    assert d.docker("exec", cid, "true").returncode == 0
    assert d.docker("kill", cid).returncode == 0
    assert wait_for(lambda: d.docker("inspect", "-f", "{{.State.Running}}", cid).stdout.strip() == "false", 20)
    tty = d.docker("run", "--rm", "-t", "--runtime=sysbox-runc", "local/busybox", "sh", "-c", "tty >/dev/null && echo has-tty")
    assert tty.stdout.strip() == "has-tty"
    assert d.docker("rm", "-f", cid).returncode == 0


def test_restart_policy(docker, cid):
    d = docker
    assert d.docker("run", "-d", "--runtime=sysbox-runc", "--restart=on-failure:2", "--name", cid,
                    "local/busybox", "sh", "-c", "exit 3").returncode == 0
    assert wait_for(lambda: d.docker("inspect", "-f", "{{.RestartCount}} {{.State.Running}}", cid).stdout.strip()
                    == "2 false", 60, 0.5)
    assert d.docker("inspect", "-f", "{{.State.ExitCode}}", cid).stdout.strip() == "3"
    d.docker("rm", "-f", cid)


@pytest.fixture(scope="session")
def systemd_image(docker):
    tar = images.build("debian-systemd", cache=CACHE)["tarball"]
    out = docker.docker("import", tar, "local/debian-systemd", timeout=300)
    assert out.returncode == 0, out.stderr
    return "local/debian-systemd"


@pytest.mark.slow
def test_system_container_with_docker_and_containerd_inside(docker, systemd_image, session_mgr, cid):
    try:
        _system_container(docker, systemd_image, session_mgr, cid)
    finally:
        docker.docker("rm", "-f", cid)  # never leave it running for the tests after this one


def _system_container(d, systemd_image, session_mgr, cid):
    bb = os.path.dirname(images.build("busybox", cache=CACHE)["tarball"])
    t0 = time.monotonic()
    assert d.docker("run", "-d", "--runtime=sysbox-runc", "--name", cid, "-v", f"{bb}:/images:ro", systemd_image,
                    "/sbin/init").returncode == 0

    def state() -> str:
        return d.docker("exec", cid, "systemctl", "is-system-running").stdout.strip()
    assert wait_for(lambda: state() in ("running", "degraded"), 90) and state() == "running", \
        d.docker("exec", cid, "systemctl", "--failed").stdout + d.docker("logs", cid).stdout[-2000:]
    boot = time.monotonic() - t0
    assert d.docker("exec", cid, "systemctl", "--failed", "--no-legend").stdout.strip() == ""
    svc = d.docker("exec", cid, "sh", "-c", "systemctl start systemd-hostnamed && systemctl is-active systemd-hostnamed"
                   " && systemctl stop systemd-hostnamed; systemctl is-active systemd-hostnamed")
    assert svc.stdout.split() == ["active", "inactive"]
    assert d.docker("exec", cid, "journalctl", "-b", "--no-pager", "-n", "3").returncode == 0
    assert d.docker("exec", cid, "loginctl", "list-sessions").returncode == 0

    inner = d.docker("exec", cid, "sh", "-c",
                     "systemctl is-active docker && docker info --format '{{.Driver}}' && "
                     "docker load -i /images/busybox.docker.tar >/dev/null && docker tag local/busybox inner/busybox && "
                     "docker run --rm inner/busybox sh -c 'ping -c1 -W2 $(ip route | awk \"/default/ {print \\$3}\") "
                     ">/dev/null && echo inner-net-ok'", timeout=180)
    assert inner.stdout.split() == ["active", "overlay2", "inner-net-ok"], inner.stderr
    ctr = d.docker("exec", cid, "sh", "-c",
                   "docker save inner/busybox -o /tmp/bb.tar && ctr image import /tmp/bb.tar >/dev/null && "
                   "ctr run --rm docker.io/inner/busybox:latest c1 echo ctr-ok", timeout=180)
    assert ctr.stdout.strip() == "ctr-ok", ctr.stderr

    t1 = time.monotonic()
    assert d.docker("stop", cid).returncode == 0
    assert time.monotonic() - t1 < 10, f"stop took {time.monotonic() - t1:.1f} s"  # SIGRTMIN+3, not SIGKILL
    assert d.docker("start", cid).returncode == 0
    assert wait_for(lambda: state() in ("running", "degraded"), 90)
    kept = wait_for(lambda: d.docker("exec", cid, "docker", "images", "--format", "{{.Repository}}").stdout.strip(), 30, 1)
    assert "inner/busybox" in kept, d.docker("exec", cid, "systemctl", "status", "docker").stdout[-1500:]
    full_id = d.docker("inspect", "-f", "{{.Id}}", cid).stdout.strip()
    assert full_id in [c["id"] for c in session_mgr.call("status")["containers"]]
    assert d.docker("rm", "-f", cid).returncode == 0
    assert wait_for(lambda: full_id not in [c["id"] for c in session_mgr.call("status")["containers"]], 30, 0.5)
    assert not os.path.exists(os.path.join(session_mgr.data_root, "docker", full_id))
    print(f"\nboot to running through docker: {boot:.2f} s")


def test_network_host_and_container_modes(docker, cid):
    """--network host joins the daemon's network namespace (here the test's own) and
    --network container:X another container's: allowed, exec works, and the container may
    not write that namespace's knobs (it is not its own)."""
    d = docker
    run = d.docker("run", "-d", "--runtime=sysbox-runc", "--name", cid, "--network", "host", "local/busybox",
                   "sleep", "300")
    assert run.returncode == 0, run.stderr
    try:
        links = d.in_netns("ip", "-o", "link").stdout.splitlines()  # sysfs would show the mounter's netns
        daemon_ifaces = sorted(line.split(":")[1].strip().split("@")[0] for line in links)
        ex = d.docker("exec", cid, "sh", "-c", "ls /sys/class/net; cat /proc/self/uid_map")
        assert ex.returncode == 0, ex.stderr
        words = ex.stdout.split()
        assert sorted(words[:-3]) == daemon_ifaces and words[-3] == "0" and words[-1] == "65536"
        before = d.in_netns("cat", "/proc/sys/net/ipv4/tcp_keepalive_time").stdout
        w = d.docker("exec", cid, "sh", "-c", "echo 7201 > /proc/sys/net/ipv4/tcp_keepalive_time")
        assert w.returncode != 0 and "Permission denied" in w.stderr
        assert d.in_netns("cat", "/proc/sys/net/ipv4/tcp_keepalive_time").stdout == before
        joined = d.docker("run", "--rm", "--runtime=sysbox-runc", "--network", f"container:{cid}", "local/busybox",
                          "ls", "/sys/class/net")
        assert joined.returncode == 0 and sorted(joined.stdout.split()) == daemon_ifaces, joined.stderr
    finally:
        assert d.docker("rm", "-f", cid).returncode == 0


def test_device_kvm_is_usable_inside(docker, cid, helper_dir):
    """`docker run --device /dev/kvm`: a /dev/kvm of the container's root that answers
    KVM_GET_API_VERSION (12), the same answer as under runc; the host's node is untouched."""
    if not os.path.exists("/dev/kvm"):
        pytest.skip("gap: this machine has no /dev/kvm")
    before = os.stat("/dev/kvm")
    answers = []
    for runtime in ("runc", "sysbox-runc"):
        out = docker.docker("run", "--rm", f"--runtime={runtime}", "--device", "/dev/kvm", "-v",
                            f"{helper_dir}:/home:ro", "local/busybox", "sh", "-c",
                            "stat -c '%u %g %a' /dev/kvm; /home/sysc ioctl /dev/kvm 0xAE00")
        answers.append((out.returncode, out.stdout, out.stderr))
    assert answers[0] == answers[1], answers
    assert answers[1][0] == 0 and answers[1][1].splitlines()[1] == "12", answers
    now = os.stat("/dev/kvm")
    assert (now.st_uid, now.st_gid, now.st_mode) == (before.st_uid, before.st_gid, before.st_mode)
