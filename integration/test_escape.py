"""Escape attempts from inside a system container: each must fail with the kernel's errno (or
stay inside the container) and leave the host unchanged.

| # | attempt (as root inside)                                         | expected                                   |
|---|------------------------------------------------------------------|--------------------------------------------|
| 1 | write kernel.panic, vm.overcommit_memory, nf_conntrack_max        | per-container value; host value unchanged  |
| 2 | mknod the host's root block device, mount it                      | EPERM (mknod), no device, host untouched   |
| 3 | open /dev/mem, read /proc/kcore, write /proc/sysrq-trigger        | absent / empty / refused                   |
| 4 | load a kernel module (init_module via insmod)                     | ENOSYS (seccomp) or EPERM                  |
| 5 | trapped mount: bind source with `..` or a symlink to reach /      | resolved in the container's root           |
| 6 | symlink in /var/lib/docker to a host dir, then container removal   | manager unlinks it; host dir and file kept |
| 7 | chown a file to an id outside the container's range               | EINVAL                                     |
| 8 | signal or find another container's or the host's processes        | ESRCH / not visible                        |
| 9 | read another container's emulated /proc/sys value                 | own value only                             |
|10 | set the host's hostname, time, or reboot it                       | own UTS ns / EPERM / only the container    |
"""

from __future__ import annotations

import json
import os
import subprocess
import time
import uuid



def start(rt, make_bundle, cid: str, args=("sleep", "300"), readonly: bool = True) -> int:
    out = rt("run", "-d", "--bundle", make_bundle(list(args), name=cid, readonly=readonly), cid)
    assert out.returncode == 0, out.stderr
    return rt.state(cid)["pid"]


def sh(rt, cid: str, script: str) -> subprocess.CompletedProcess:
    return rt.exec(cid, "sh", "-c", script)


def host_sysctl(name: str) -> str | None:
    try:
        with open("/proc/sys/" + name.replace(".", "/")) as f:
            return f.read()
    except OSError:
        return None


def test_host_global_sysctls_stay_unchanged(rt, make_bundle, cid):
    start(rt, make_bundle, cid)
    knobs = {"kernel.panic": "97", "vm.overcommit_memory": "2", "net.netfilter.nf_conntrack_max": "1234"}
    before = {k: host_sysctl(k) for k in knobs}
    for knob, value in knobs.items():
        path = "/proc/sys/" + knob.replace(".", "/")
        out = sh(rt, cid, f"echo {value} > {path}; cat {path}")
        assert out.returncode == 0 and out.stdout.strip() == value, (knob, out.stderr)  # the container's own
    assert {k: host_sysctl(k) for k in knobs} == before


def test_host_block_device_cannot_be_made_or_mounted(rt, make_bundle, cid):
    start(rt, make_bundle, cid)
    st = os.stat("/")
    major, minor = os.major(st.st_dev), os.minor(st.st_dev)
    out = sh(rt, cid, f"mknod /tmp/root-dev b {major} {minor}")
    assert out.returncode != 0 and "Operation not permitted" in out.stderr
    out = sh(rt, cid, "mkdir -p /tmp/m && mount -t ext4 /tmp/root-dev /tmp/m")
    assert out.returncode != 0
    assert sh(rt, cid, "ls /dev").stdout.split() and "vda" not in sh(rt, cid, "ls /dev").stdout


def test_dev_mem_kcore_and_sysrq(rt, make_bundle, cid):
    start(rt, make_bundle, cid)
    assert sh(rt, cid, "cat /dev/mem").returncode != 0
    kcore = sh(rt, cid, "wc -c < /proc/kcore")
    assert kcore.returncode != 0 or kcore.stdout.strip() == "0"
    sysrq = sh(rt, cid, "echo h > /proc/sysrq-trigger")
    assert sysrq.returncode != 0


def test_module_load_is_refused(rt, make_bundle, cid):
    start(rt, make_bundle, cid)
    out = sh(rt, cid, "printf '\\177ELF' > /tmp/x.ko; insmod /tmp/x.ko")
    # refused before the module is even parsed: by seccomp (ENOSYS) or by the kernel (EPERM)
    assert out.returncode != 0 and ("Operation not permitted" in out.stderr or "not support" in out.stderr), out.stderr


def test_trapped_bind_with_dotdot_or_symlink_stays_inside(rt, make_bundle, cid):
    marker = f"/tmp/host-only-{uuid.uuid4().hex[:8]}"
    os.makedirs(marker)
    try:
        start(rt, make_bundle, cid)
        for src in ("/../../../../tmp", "/tmp/up/../../../../tmp"):
            out = sh(rt, cid, f"ln -sfn / /tmp/up; mkdir -p /mnt/t; mount --bind {src} /mnt/t && ls /mnt/t; "
                              "umount /mnt/t")
            assert os.path.basename(marker) not in out.stdout, (src, out.stdout)
        out = sh(rt, cid, f"mount --bind {marker} /mnt 2>&1")
        assert out.returncode != 0  # the host path does not exist in the container's root
    finally:
        os.rmdir(marker)


def test_special_dir_symlink_is_not_followed_on_removal(rt, make_bundle, cid, tmp_path):
    canary = tmp_path / "canary"
    canary.mkdir()
    (canary / "precious").write_text("keep me\n")
    start(rt, make_bundle, cid)
    out = sh(rt, cid, f"ln -s {canary} /var/lib/docker/evil-dir && ln -s {canary}/precious /var/lib/docker/evil-file"
                      f" && mkdir -p /var/lib/docker/d && ln -s {canary} /var/lib/docker/d/deeper")
    assert out.returncode == 0, out.stderr
    assert rt("delete", "--force", cid).returncode == 0
    deadline = time.monotonic() + 15
    while cid in rt.registered() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert (canary / "precious").read_text() == "keep me\n"


def test_chown_outside_the_range_is_einval(rt, make_bundle, cid):
    start(rt, make_bundle, cid)
    out = sh(rt, cid, "touch /tmp/f && chown 70000:70000 /tmp/f")
    assert out.returncode != 0 and "Invalid argument" in out.stderr, out.stderr
    assert sh(rt, cid, "chown 65535:65535 /tmp/f && stat -c %u /tmp/f").stdout.strip() == "65535"


def test_other_containers_and_host_processes_are_out_of_reach(rt, make_bundle, cid):
    a, b = cid + "a", cid + "b"
    pid_a = start(rt, make_bundle, a)
    start(rt, make_bundle, b)
    for target in (pid_a, os.getpid(), 1):
        if target == 1:
            continue  # pid 1 inside is the container's own init
        out = sh(rt, b, f"kill -0 {target}")
        assert out.returncode != 0, target
    visible = sh(rt, b, "ls /proc | grep -c '^[0-9]'").stdout.strip()
    assert int(visible) <= 4  # its init, the exec'd shell, ls and grep
    assert sh(rt, b, f"cat /proc/{pid_a}/environ").returncode != 0


def test_emulated_values_do_not_cross_containers(rt, make_bundle, cid):
    a, b = cid + "a", cid + "b"
    start(rt, make_bundle, a)
    start(rt, make_bundle, b)
    assert sh(rt, a, "echo 55 > /proc/sys/kernel/panic").returncode == 0
    assert sh(rt, b, "cat /proc/sys/kernel/panic").stdout.strip() != "55"
    assert sh(rt, a, "cat /proc/sys/kernel/panic").stdout.strip() == "55"


def test_hostname_time_and_reboot_stay_inside(rt, make_bundle, cid):
    host_name = os.uname().nodename
    start(rt, make_bundle, cid)
    assert sh(rt, cid, "hostname evil-name && hostname").stdout.strip() == "evil-name"
    assert os.uname().nodename == host_name
    out = sh(rt, cid, "date -s '2001-01-01 00:00:00'")
    assert "Operation not permitted" in out.stderr and time.gmtime().tm_year > 2001  # busybox exits 0 anyway
    sh(rt, cid, "reboot -f")  # in its PID namespace this ends the container, nothing else
    deadline = time.monotonic() + 10
    while rt("state", cid).returncode == 0 and json.loads(rt("state", cid).stdout)["status"] == "running" \
            and time.monotonic() < deadline:
        time.sleep(0.2)
    assert os.path.exists("/proc/1")
