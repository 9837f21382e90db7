"""`sysbox run|ps|exec|stop|start|rm|ssh|logs|cp|snapshot|restore|clone|images|rmi`: dev VMs
with no Docker, images through skopeo and umoci (unpacked once, a copy-on-write layer per VM),
networking through the CNI plugins.

The CLI runs inside a network namespace the test creates (`nsenter --net`), so the CNI bridge,
its iptables rules and published ports exist only there; traffic goes to that namespace.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import tarfile
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


def kib_on_disk(path: str) -> int:
    """What a directory takes on disk, not crossing into mounts (a running VM's rootfs)."""
    return int(subprocess.run(["du", "-sxk", path], capture_output=True, text=True, check=True).stdout.split()[0])


def one_error(out: subprocess.CompletedProcess) -> str:
    errors = [line for line in out.stderr.splitlines() if line.startswith("sysbox:")]
    assert out.returncode == 1 and len(errors) == 1, (out.returncode, out.stderr)
    return errors[0]


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
    assert "importing busybox.docker.tar" in out.stderr and "unpacking busybox: done" in out.stderr  # progress
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


@pytest.fixture
def busybox_archive():
    return images.build("busybox", cache=CACHE)["docker_archive"]


def test_vms_share_one_unpacked_image_and_each_costs_only_its_layer(devvm, busybox_archive):
    for name in ("a", "b"):
        out = devvm("run", "--name", name, busybox_archive, "sleep", "600")
        assert out.returncode == 0, out.stderr
    second = devvm("run", "--name", "c", busybox_archive, "sleep", "600")
    assert second.returncode == 0 and "unpacking" not in second.stderr  # the image is unpacked once
    layers = os.path.join(devvm.store, "images", "layers")
    assert len([d for d in os.listdir(layers) if not d.startswith(".")]) == 1
    image_root = os.path.join(layers, os.listdir(layers)[0], "rootfs")
    assert kib_on_disk(os.path.join(devvm.store, "containers", "c")) < 1024  # its own layer only
    cdir = os.path.join(devvm.store, "containers", "c")
    for path, mode in (("meta.json", 0o600), ("console.log", 0o600), ("bundle/config.json", 0o600), ("layer", 0o700),
                       ("runtime.log", 0o600)):
        assert os.stat(os.path.join(cdir, path)).st_mode & 0o777 == mode, path  # host root's only
    assert os.stat(os.path.join(devvm.store, "images")).st_mode & 0o077 == 0
    # what a VM writes lands in its layer: the shared image and the other VMs do not see it
    assert devvm("exec", "a", "sh", "-c", "echo mine > /etc/motd; rm /bin/vi").returncode == 0
    assert not os.path.exists(os.path.join(image_root, "etc", "motd")) and os.path.lexists(
        os.path.join(image_root, "bin", "vi"))
    assert devvm("exec", "b", "test", "-e", "/etc/motd").returncode == 1
    assert devvm("exec", "b", "test", "-e", "/bin/vi").returncode == 0
    assert devvm("exec", "a", "cat", "/etc/motd").stdout == "mine\n"
    listed = json.loads(devvm("images", "--json", "--size").stdout)
    assert [(r["name"], r["vms"]) for r in listed] == [("busybox", ["a", "b", "c"])] and listed[0]["size"] > 1 << 20
    assert "busybox" in one_error(devvm("rmi", "busybox")) and "in use by a, b, c" in one_error(devvm("rmi", "busybox"))
    for name in ("a", "b", "c"):
        assert devvm("rm", "-f", name).returncode == 0
        assert os.path.isdir(image_root)  # removing a VM removes only its layer
    assert devvm("rmi", "busybox").returncode == 0
    assert not os.path.exists(os.path.join(layers, os.path.basename(os.path.dirname(image_root))))
    assert json.loads(devvm("images", "--json").stdout) == []
    assert "no such image: busybox" in one_error(devvm("rmi", "busybox"))


def test_limits_environment_and_hostname_are_what_the_vm_sees(devvm, busybox_archive):
    out = devvm("run", "--name", "lim", "-m", "96m", "--cpus", "1", "--cpuset-cpus", "0", "--pids-limit", "40",
                "-e", "GREETING=hi there",
                "-e", "PATH", "--hostname", "box1", busybox_archive, "sleep", "600")
    assert out.returncode == 0, out.stderr
    seen = devvm("exec", "lim", "sh", "-c", "free -k | awk '/Mem:/{print $2}'; cat /sys/devices/system/cpu/online; "
                 "grep -c ^processor /proc/cpuinfo; cat /sys/fs/cgroup/pids.max 2>/dev/null || "
                 "cat /sys/fs/cgroup/pids/pids.max; echo \"$GREETING\"; hostname; cat /etc/hostname; "
                 "grep box1 /etc/hosts | wc -l; test -n \"$PATH\" && echo path-set; nproc")
    assert seen.returncode == 0, seen.stderr
    assert seen.stdout.split("\n")[:10] == [str(96 * 1024), "0", "1", "40", "hi there", "box1", "box1", "1", "path-set",
                                          "1"]  # nproc: the cpuset
    # 40 tasks at most: the shell's forks beyond that fail inside (without a limit, 60 succeed)
    forks = devvm("exec", "lim", "sh", "-c", "for i in $(seq 60); do sleep 30 & done; echo all-forked", timeout=60)
    assert forks.returncode != 0 and "can't fork" in forks.stderr and "all-forked" not in forks.stdout, forks.stderr


def test_start_all_brings_back_the_restart_always_vms(devvm, busybox_archive):
    assert devvm("run", "--name", "keep", "--restart", "always", busybox_archive, "sleep", "600").returncode == 0
    assert devvm("run", "--name", "once", busybox_archive, "sleep", "600").returncode == 0
    assert devvm("stop", "-t", "1", "keep", "once").returncode == 0
    out = devvm("start", "--all")
    assert out.returncode == 0 and out.stdout.split() == ["keep"], out.stderr
    states = {n: r["status"] for n, r in devvm.ps().items()}
    assert states == {"keep": "running", "once": "exited"}
    assert devvm("start", "--all").stdout == ""  # nothing left to start
    assert "start --all takes no names" in one_error(devvm("start", "--all", "once"))


def test_logs_show_the_console_and_follow_until_the_vm_stops(devvm, busybox_archive):
    out = devvm("run", "--name", "talk", busybox_archive, "sh", "-c", "echo first line; sleep 600")
    assert out.returncode == 0, out.stderr
    assert wait_for(lambda: "first line" in devvm("logs", "talk").stdout, 20)
    follow = subprocess.Popen(["nsenter", f"--net=/run/netns/{devvm.netns}", SYSBOX, "logs", "-f", *devvm.opts, "talk"],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        time.sleep(1)
        assert follow.poll() is None  # still following a running VM
        assert devvm("stop", "-t", "1", "talk").returncode == 0
        text, _ = follow.communicate(timeout=30)  # and done once it stopped
        assert follow.returncode == 0 and "first line" in text
    finally:
        if follow.poll() is None:
            follow.kill()
            follow.wait()
    assert "first line" in devvm("logs", "talk").stdout  # a stopped VM's console is still there


def test_cp_in_and_out_as_the_vms_root_sees_it(devvm, busybox_archive, tmp_path):
    assert devvm("run", "--name", "cpy", busybox_archive, "sleep", "600").returncode == 0
    src = tmp_path / "tree"
    (src / "sub").mkdir(parents=True)
    (src / "sub" / "file.txt").write_text("payload\n")
    (src / "run.sh").write_text("#!/bin/sh\n")
    (src / "run.sh").chmod(0o755)
    os.chown(src / "sub" / "file.txt", 1234, 1234)
    assert devvm("cp", str(src), "cpy:/srv").returncode == 0  # /srv does not exist: it becomes the copy
    assert devvm("cp", str(src / "run.sh"), "cpy:/tmp").returncode == 0  # /tmp is a dir: copied into it
    inside = devvm("exec", "cpy", "sh", "-c", "cat /srv/sub/file.txt; stat -c '%u:%g %a' /srv/sub/file.txt "
                   "/tmp/run.sh")
    assert inside.stdout.split("\n")[:3] == ["payload", "0:0 644", "0:0 755"], inside.stdout + inside.stderr
    upper = os.path.join(devvm.store, "containers", "cpy", "layer", "upper", "srv", "sub", "file.txt")
    assert os.stat(upper).st_uid >= 65536  # on disk, in the VM's id range: its root owns it
    assert devvm("exec", "cpy", "sh", "-c", "mkdir -p /out/d && echo back > /out/d/f && ln -s /etc/passwd /out/l"
                 ).returncode == 0
    dest = tmp_path / "got"
    dest.mkdir()
    assert devvm("cp", "cpy:/out", str(dest)).returncode == 0
    assert (dest / "out" / "d" / "f").read_text() == "back\n"
    assert os.readlink(dest / "out" / "l") == "/etc/passwd"  # a symlink stays a symlink
    assert devvm("cp", "cpy:/out/d/f", str(tmp_path / "renamed")).returncode == 0
    assert (tmp_path / "renamed").read_text() == "back\n"
    assert "no such file or directory in container cpy" in one_error(devvm("cp", "cpy:/nope", str(dest)))
    assert "no such container: ghost" in one_error(devvm("cp", str(src), "ghost:/tmp"))
    assert "between two containers" in one_error(devvm("cp", "cpy:/out", "cpy:/tmp"))
    assert "one side must be NAME:PATH" in one_error(devvm("cp", str(src), str(dest)))
    assert "must be absolute" in one_error(devvm("cp", str(src), "cpy:tmp"))
    # a stopped VM: its layer, resolved inside it, owned as its root sees it once it runs again
    host_dir = tmp_path / "host-only"
    host_dir.mkdir()
    assert devvm("exec", "cpy", "sh", "-c", f"mkdir -p {host_dir} && ln -s {host_dir} /trap").returncode == 0
    assert devvm("stop", "-t", "1", "cpy").returncode == 0
    assert devvm("cp", str(src / "run.sh"), "cpy:/trap/").returncode == 0
    assert os.listdir(host_dir) == []  # it went into the VM's own tree, not through to the host

    assert devvm("cp", str(src / "sub"), "cpy:/srv/offline").returncode == 0
    assert devvm("cp", "cpy:/out/d/f", str(tmp_path / "offline-out")).returncode == 0
    assert (tmp_path / "offline-out").read_text() == "back\n"
    assert "no directory /nope in container cpy" in one_error(devvm("cp", str(src), "cpy:/nope/x"))
    assert not [m for m in mounts() if m.startswith(devvm.store)]  # its layer is unmounted again
    assert devvm("start", "cpy").returncode == 0
    offline = devvm("exec", "cpy", "stat", "-c", "%u:%g", "/srv/offline/file.txt")
    assert offline.stdout.strip() == "0:0", offline.stdout + offline.stderr
    assert devvm("exec", "cpy", "test", "-f", f"{host_dir}/run.sh").returncode == 0


def test_cp_out_of_a_hostile_vm_writes_nothing_outside_the_destination(devvm, busybox_archive, tmp_path):
    """The VM's own tar is the VM's: one that answers with an archive escaping through a symlink
    it sent first, or through '..', is refused and nothing lands outside the destination."""
    assert devvm("run", "--name", "evil", busybox_archive, "sleep", "600").returncode == 0
    victim = tmp_path / "victim"
    victim.mkdir()
    cases = [
        [("data", "dir", None), ("data/esc", "sym", str(victim)), ("data/esc/pwned", "file", b"x")],
        [("data", "dir", None), ("data/../../victim/pwned", "file", b"x")],
        [("data", "dir", None), ("/abs/pwned", "file", b"x")],
        [("data", "dir", None), ("data/hard", "link", str(victim / "secret"))],
    ]
    for i, members in enumerate(cases):
        crafted = tmp_path / f"evil{i}.tar"
        with tarfile.open(crafted, "w") as tar:
            for name, kind, what in members:
                ti = tarfile.TarInfo(name)
                if kind == "file":
                    ti.size = len(what)
                    tar.addfile(ti, io.BytesIO(what))
                    continue
                ti.type = {"dir": tarfile.DIRTYPE, "sym": tarfile.SYMTYPE, "link": tarfile.LNKTYPE}[kind]
                ti.linkname = what or ""
                tar.addfile(ti)
        assert devvm("cp", str(crafted), f"evil:/evil{i}.tar").returncode == 0
    # the VM's tar now answers every request with the crafted archive /which names
    rigged = devvm("exec", "evil", "sh", "-c", "rm /bin/tar && printf '#!/bin/sh\\ncat /evil$(cat /which).tar\\n' "
                   "> /bin/tar && chmod 755 /bin/tar && mkdir -p /data")
    assert rigged.returncode == 0, rigged.stderr
    for i in range(len(cases)):
        assert devvm("exec", "evil", "sh", "-c", f"echo {i} > /which").returncode == 0
        dest = tmp_path / f"dest{i}"
        dest.mkdir()
        refused = one_error(devvm("cp", "evil:/data", str(dest)))
        assert "refused" in refused, refused
        assert os.listdir(victim) == [], (i, refused)
        assert not os.path.exists("/abs/pwned")


def test_snapshot_restore_and_clone(devvm, busybox_archive):
    assert devvm("run", "--name", "orig", "-p", "8089:80", busybox_archive, "sleep", "600").returncode == 0
    assert devvm("exec", "orig", "sh", "-c", "echo v1 > /root/state").returncode == 0
    assert devvm("snapshot", "orig", "good").returncode == 0  # taken while running
    assert "already has a snapshot good" in one_error(devvm("snapshot", "orig", "good"))
    assert devvm("exec", "orig", "sh", "-c", "echo v2 > /root/state; rm /bin/ls").returncode == 0
    assert "orig is running" in one_error(devvm("restore", "orig", "good"))
    assert devvm("stop", "-t", "1", "orig").returncode == 0
    assert "has no snapshot bad" in one_error(devvm("restore", "orig", "bad"))
    assert devvm("restore", "orig", "good").returncode == 0
    assert devvm("start", "orig").returncode == 0
    back = devvm("exec", "orig", "sh", "-c", "cat /root/state; stat -c %u /root/state; test -e /bin/ls && echo ls")
    assert back.stdout.split() == ["v1", "0", "ls"], back.stdout + back.stderr
    assert devvm("snapshot", "-l", "orig").stdout.split()[0] == "good"
    assert "snapshot --list takes no SNAPSHOT" in one_error(devvm("snapshot", "-l", "orig", "other"))

    assert devvm("clone", "orig", "copy").returncode == 0  # from a running VM
    assert "container copy already exists" in one_error(devvm("clone", "orig", "copy"))
    assert "no such container: nope" in one_error(devvm("clone", "nope", "x"))
    assert devvm.ps()["copy"]["status"] == "exited" and devvm.ps()["copy"]["ports"] == ""
    assert kib_on_disk(os.path.join(devvm.store, "containers", "copy")) < 1024
    assert devvm("start", "copy").returncode == 0
    seen = devvm("exec", "copy", "sh", "-c", "cat /root/state; hostname; stat -c %u /root/state")
    assert seen.stdout.split() == ["v1", "copy", "0"], seen.stdout + seen.stderr
    assert devvm("rm", "-f", "orig").returncode == 0
    assert devvm("exec", "copy", "cat", "/root/state").stdout == "v1\n"  # the clone owes its source nothing


@pytest.mark.parametrize("args,msg", [
    (["-m", "lots", "IMAGE", "true"], "--memory lots: expected a size"),
    (["-m", "1m", "IMAGE", "true"], "--memory 1m: the minimum is 6m"),
    (["--cpus", "999", "IMAGE", "true"], "--cpus 999: expected a number from 0.01"),
    (["--pids-limit", "0", "IMAGE", "true"], "--pids-limit 0: expected a positive number"),
    (["--cpuset-cpus", "0-999", "IMAGE", "true"], "--cpuset-cpus 0-999: this host has CPUs"),
    (["-e", "1X=y", "IMAGE", "true"], "-e 1X=y: expected NAME=VALUE"),
    (["--hostname=-bad", "IMAGE", "true"], "--hostname '-bad'"),
    (["--restart", "sometimes", "IMAGE", "true"], "--restart sometimes: expected one of no, always"),
    (["--ssh-key", "/nonexistent.pub", "IMAGE", "true"], "--ssh-key /nonexistent.pub: No such file"),
    (["-p", "80:80", "-p", "80:81", "IMAGE", "true"], "-p 80/tcp: published twice"),
    (["IMAGE", "/no/such/binary"], "/no/such/binary"),  # made, started, failed: all undone
])
def test_bad_run_flags_are_one_line_and_leave_nothing(devvm, busybox_archive, args, msg):
    out = devvm("run", *[busybox_archive if a == "IMAGE" else a for a in args])
    assert msg in one_error(out)
    assert devvm.ps() == {}
    assert not os.path.exists(os.path.join(devvm.store, "containers")) or os.listdir(
        os.path.join(devvm.store, "containers")) == []


def test_a_published_port_in_use_is_refused(devvm, busybox_archive):
    assert devvm("run", "--name", "first", "-p", "8090:80", busybox_archive, "sleep", "600").returncode == 0
    assert "-p 8090/tcp: port in use by container first" in one_error(
        devvm("run", "--name", "second", "-p", "8090:80", busybox_archive, "sleep", "600"))
    listener = subprocess.Popen(["nsenter", f"--net=/run/netns/{devvm.netns}", sys.executable, "-c",
                                 "import socket, time; s = socket.socket(); s.bind(('', 8091)); s.listen(); "
                                 "print('up', flush=True); time.sleep(120)"], stdout=subprocess.PIPE, text=True)
    try:
        assert listener.stdout.readline().strip() == "up"
        assert "-p 8091/tcp: port in use on this host" in one_error(
            devvm("run", "--name", "third", "-p", "8091:80", busybox_archive, "sleep", "600"))
    finally:
        listener.kill()
        listener.wait()
    assert sorted(devvm.ps()) == ["first"]
    # a stopped VM's port is free again, and taken back when it starts
    assert devvm("stop", "-t", "1", "first").returncode == 0
    assert devvm("run", "--name", "fourth", "-p", "8090:80", busybox_archive, "sleep", "600").returncode == 0
    assert "port in use by container fourth" in one_error(devvm("start", "first"))
    assert devvm.ps()["first"]["status"] == "exited"


@pytest.fixture
def ssh_key(tmp_path):
    key = tmp_path / "id_test"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    return key


def test_ssh_into_a_systemd_vm_through_its_published_port(devvm, ssh_key):
    archive = images.build("debian-systemd", cache=CACHE)["docker_archive"]
    out = devvm("run", "--name", "sshvm", "-p", "2222:22", "--ssh-key", f"{ssh_key}.pub", archive, timeout=300)
    assert out.returncode == 0, out.stderr
    argv = ["ssh", "-i", str(ssh_key), "-p", "2222", "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=no",
            "-o", "UserKnownHostsFile=/dev/null", "-o", "ConnectTimeout=5", "root@10.77.0.1",
            "echo logged-in-as-$(id -u)-on-$(hostname)"]
    login = wait_for(lambda: devvm.in_netns(*argv, timeout=30).stdout.strip(), 60, every=1)
    assert login == "logged-in-as-0-on-sshvm", devvm.in_netns(*argv, timeout=30).stderr
    local = [a if a != "root@10.77.0.1" else "root@127.0.0.1" for a in argv]  # the README's `ssh -p 2222 root@localhost`
    assert devvm.in_netns(*local, timeout=30).stdout.strip() == "logged-in-as-0-on-sshvm"
    via = devvm("ssh", "sshvm", "cat", "/etc/hostname")  # the VM's own address, its key from --ssh-key
    assert via.returncode == 0 and via.stdout == "sshvm\n", via.stderr
    # each VM made its own host keys at first boot; the image carries none
    image_ssh = os.path.join(devvm.store, "images", "layers")
    layer = next(d for d in os.listdir(image_ssh) if not d.startswith("."))
    assert not [n for n in os.listdir(os.path.join(image_ssh, layer, "rootfs", "etc", "ssh")) if n.startswith("ssh_host")]
    journal = devvm("logs", "sshvm")
    assert journal.returncode == 0 and "Accepted publickey for root" in journal.stdout  # the journal, not the console
    assert devvm("stop", "-t", "20", "sshvm").returncode == 0
    assert "sshvm is not running" in one_error(devvm("ssh", "sshvm", "true"))


def test_watch_restarts_always_vms_that_exit_but_not_stopped_ones(devvm, busybox_archive):
    """`sysbox start --all --watch` (the sysbox-vms unit): a --restart always VM whose init
    exits is started again, with its own layer (the boot count it keeps grows); one stopped
    with `sysbox stop` stays stopped; the watcher leaves on SIGTERM and the VMs stay up."""
    assert devvm("run", "--name", "flaky", "--restart", "always", busybox_archive,
                 "sh", "-c", "echo boot >> /boots; sleep 1").returncode == 0
    assert devvm("run", "--name", "steady", "--restart", "always", busybox_archive, "sleep", "600").returncode == 0
    watcher = subprocess.Popen(["nsenter", f"--net=/run/netns/{devvm.netns}", SYSBOX, "start", "--all", "--watch",
                                *devvm.opts], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    boots = os.path.join(devvm.store, "containers", "flaky", "layer", "upper", "boots")

    def count() -> int:
        try:
            with open(boots) as f:
                return len(f.read().split())
        except FileNotFoundError:
            return 0

    try:
        assert wait_for(lambda: count() >= 3, 60) , count()
        assert devvm("stop", "-t", "1", "steady").returncode == 0
        time.sleep(4)  # longer than the watcher's rescan: it had every chance to (wrongly) start it
        assert devvm.ps()["steady"]["status"] == "exited"
        assert watcher.poll() is None
    finally:
        watcher.terminate()
        try:
            _, err = watcher.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            watcher.kill()
            _, err = watcher.communicate()
    assert watcher.returncode == 0, err
    assert "flaky exited; started it again" in err
    assert "steady" not in err
