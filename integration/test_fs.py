"""sysbox-fs seen from inside real containers: per-container values, writes that stay in the
container, namespaced knobs done for real, resource views from the cgroup, no host leaks."""

from __future__ import annotations

import json
import os
import subprocess
import time

import pytest

from sysbox.fs.mounts import MOUNTS
from sysbox.fs.nodes import FILES, SUBTREES
from sysbox.fs.nodes.proc_sys import Cached, ProcSys


def start(rt, make_bundle, cid: str, edit=None, args=("sleep", "300")) -> None:
    bundle = make_bundle(list(args), name=cid)
    if edit:
        path = os.path.join(bundle, "config.json")
        spec = json.load(open(path))
        edit(spec)
        json.dump(spec, open(path, "w"))
    out = rt("run", "-d", "--bundle", bundle, cid)
    assert out.returncode == 0, out.stderr


def sh(rt, cid: str, script: str) -> subprocess.CompletedProcess:
    return rt.exec(cid, "sh", "-c", script)


def test_mount_table_matches_nodes():
    served = set(FILES) | set(SUBTREES)
    mounted = {src for src, _, _, needs in MOUNTS if not needs or os.path.exists(needs)}
    assert mounted == served


def test_two_containers_have_their_own_uptime_and_values(rt, make_bundle, cid):
    a, b = cid + "a", cid + "b"
    start(rt, make_bundle, a)
    time.sleep(1.5)
    start(rt, make_bundle, b)
    up_a = float(sh(rt, a, "cat /proc/uptime").stdout.split()[0])
    up_b = float(sh(rt, b, "cat /proc/uptime").stdout.split()[0])
    host_up = float(open("/proc/uptime").read().split()[0])
    assert 1.0 < up_a - up_b < 10 and up_a < host_up
    host = open("/proc/sys/kernel/panic").read()
    assert sh(rt, a, "echo 11 > /proc/sys/kernel/panic").returncode == 0
    assert sh(rt, b, "echo 22 > /proc/sys/kernel/panic").returncode == 0
    assert sh(rt, a, "cat /proc/sys/kernel/panic").stdout == "11\n"
    assert sh(rt, b, "cat /proc/sys/kernel/panic").stdout == "22\n"
    assert open("/proc/sys/kernel/panic").read() == host
    boot_a = sh(rt, a, "cat /proc/sys/kernel/random/boot_id").stdout
    assert boot_a == sh(rt, a, "cat /proc/sys/kernel/random/boot_id").stdout != sh(rt, b, "cat /proc/sys/kernel/random/boot_id").stdout


EMULATED = sorted(k for k, v in ProcSys.emulated.items() if isinstance(v, Cached) and v.choices is None)


def _value(knob: str) -> str:
    """A valid value different from most defaults."""
    entry = ProcSys.emulated[knob]
    assert isinstance(entry, Cached)
    if entry.count > 1:
        return "4 4 1 7"
    return str(max(entry.lo or 0, 1 if entry.hi == 1 else 2))


def test_every_emulated_knob_keeps_writes_per_container(rt, make_bundle, cid):
    start(rt, make_bundle, cid)
    host_before = {k: _host(k) for k in EMULATED}
    script = [f"echo {_value(k)} > /proc/sys/{k} && echo {k}=$(cat /proc/sys/{k})" for k in EMULATED]
    out = sh(rt, cid, " ; ".join(script))
    got = dict(line.split("=", 1) for line in out.stdout.splitlines())
    for knob in EMULATED:
        assert (got.get(knob) or "").split() == _value(knob).split(), (knob, got.get(knob), out.stderr)
    assert {k: _host(k) for k in EMULATED} == host_before  # the host never changed


def _host(knob: str) -> str | None:
    try:
        return open(f"/proc/sys/{knob}").read()
    except OSError:
        return None


@pytest.mark.parametrize("knob, value, errmsg", [
    ("kernel/kptr_restrict", "9", "Invalid argument"),
    ("kernel/pid_max", "abc", "Invalid argument"),
    ("vm/overcommit_memory", "-1", "Invalid argument"),
    ("net/core/default_qdisc", "bogus", "No such file or directory"),
    ("kernel/ngroups_max", "1", "Permission denied"),
    ("kernel/randomize_va_space", "0", "Permission denied"),
    ("kernel/random/uuid", "x", "Permission denied"),
])
def test_bad_writes_get_the_kernels_errno(rt, make_bundle, cid, knob, value, errmsg):
    start(rt, make_bundle, cid)
    before = sh(rt, cid, f"cat /proc/sys/{knob}").stdout
    out = sh(rt, cid, f"echo {value} > /proc/sys/{knob}")
    assert out.returncode != 0 and errmsg in out.stderr
    if knob != "kernel/random/uuid":
        assert sh(rt, cid, f"cat /proc/sys/{knob}").stdout == before


def test_network_knobs_are_real_in_the_container_netns(rt, make_bundle, cid):
    start(rt, make_bundle, cid)
    host = open("/proc/sys/net/ipv4/ip_forward").read()
    assert sh(rt, cid, "echo 1 > /proc/sys/net/ipv4/ip_forward").returncode == 0
    assert sh(rt, cid, "cat /proc/sys/net/ipv4/ip_forward").stdout == "1\n"
    pid = rt.state(cid)["pid"]
    seen = subprocess.run(["nsenter", "-t", str(pid), "-n", "cat", "/proc/sys/net/ipv4/ip_forward"],
                          capture_output=True, text=True, timeout=10).stdout
    assert seen == "1\n"  # the kernel's own value in that netns, not a cache
    assert open("/proc/sys/net/ipv4/ip_forward").read() == host
    listing = set(sh(rt, cid, "ls /proc/sys/net/ipv4/conf").stdout.split())
    host_only = set(os.listdir("/proc/sys/net/ipv4/conf")) - {"all", "default", "lo"}
    assert "lo" in listing and not (host_only & listing)  # the container's interfaces, not the host's


def test_sys_kernel_hides_debug_and_tracing(rt, make_bundle, cid):
    start(rt, make_bundle, cid)
    assert sh(rt, cid, "ls -A /sys/kernel/security").stdout == ""
    listing = sh(rt, cid, "ls /sys/kernel").stdout.split()
    assert not {"debug", "tracing", "config"} & set(listing) and "mm" in listing
    assert sh(rt, cid, "ls /sys/kernel/debug").returncode != 0
    assert sh(rt, cid, "cat /sys/kernel/uevent_seqnum").stdout.strip().isdigit()  # the rest is the host's
    assert sh(rt, cid, "echo x > /sys/kernel/uevent_helper").returncode != 0


@pytest.mark.skipif(not os.path.exists("/sys/module/nf_conntrack/parameters/hashsize"),
                    reason="nf_conntrack is not loaded on this host, so there is no hashsize to emulate")
def test_nf_conntrack_hashsize_per_container(rt, make_bundle, cid):
    start(rt, make_bundle, cid)
    host = open("/sys/module/nf_conntrack/parameters/hashsize").read()
    assert sh(rt, cid, "echo 131072 > /sys/module/nf_conntrack/parameters/hashsize").returncode == 0
    assert sh(rt, cid, "cat /sys/module/nf_conntrack/parameters/hashsize").stdout == "131072\n"
    assert open("/sys/module/nf_conntrack/parameters/hashsize").read() == host


def test_free_nproc_and_cpuinfo_show_the_container_limits(rt, make_bundle, cid):
    def limit(spec):
        spec["linux"].setdefault("resources", {})["memory"] = {"limit": 256 << 20}
        spec["linux"]["resources"]["cpu"] = {"cpus": "0"}
    start(rt, make_bundle, cid, edit=limit)
    # procps `free` reads /proc/meminfo; busybox's asks sysinfo(2), trapped and answered too
    assert sh(rt, cid, "head -1 /proc/meminfo").stdout.split() == ["MemTotal:", "262144", "kB"]
    free = sh(rt, cid, "free").stdout.splitlines()
    assert free[1].split()[:2] == ["Mem:", "262144"], free
    up = sh(rt, cid, "cat /proc/uptime; uptime").stdout.splitlines()
    assert float(up[0].split()[0]) < 60 and " up 0 min," in up[1], up  # the container's, not the host's
    assert sh(rt, cid, "nproc").stdout.strip() == "1"
    assert sh(rt, cid, "grep -c ^processor /proc/cpuinfo").stdout.strip() == "1"
    assert sh(rt, cid, "cat /sys/devices/system/cpu/online").stdout.strip() == "0"
    assert sh(rt, cid, "grep -c '^cpu[0-9]' /proc/stat").stdout.strip() == "1"
    assert sh(rt, cid, "awk '{print NF}' /proc/loadavg").stdout.strip() == "5"
    assert sh(rt, cid, "cat /proc/swaps").stdout.startswith("Filename")
    disk = sh(rt, cid, "cat /proc/diskstats && echo end")
    lines = disk.stdout.splitlines()
    assert disk.returncode == 0 and lines[-1] == "end"
    assert all(len(line.split()) == 20 for line in lines[:-1])  # only devices the container did I/O on


def test_cpu_quota_shows_as_cpus(rt, make_bundle, cid):
    """`--cpus 1` on a 2-CPU host: one CPU in cpuinfo and cpu/online (as lxcfs --enable-cfs;
    nproc counts the affinity mask, which a quota does not change)."""
    if len(os.sched_getaffinity(0)) < 2:
        pytest.skip("needs 2 CPUs on the host to tell a quota from the host's own count")

    def quota(spec):
        spec["linux"].setdefault("resources", {})["cpu"] = {"quota": 100000, "period": 100000}
    start(rt, make_bundle, cid, edit=quota)
    assert sh(rt, cid, "grep -c ^processor /proc/cpuinfo").stdout.strip() == "1"
    assert sh(rt, cid, "cat /sys/devices/system/cpu/online").stdout.strip() == "0"


@pytest.mark.skipif(not os.path.isdir("/proc/pressure"), reason="the host kernel keeps no PSI (/proc/pressure)")
def test_pressure_is_the_containers_cgroup(rt, make_bundle, cid):
    start(rt, make_bundle, cid)
    pid = rt.state(cid)["pid"]
    v2 = [line.split(":", 2)[2].strip() for line in open(f"/proc/{pid}/cgroup") if line.startswith("0::")]
    out = sh(rt, cid, "cat /proc/pressure/cpu /proc/pressure/memory /proc/pressure/io; ls /proc/pressure")
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0].startswith("some avg10=") and sorted(lines[6:]) == sorted(os.listdir("/proc/pressure"))
    base = "/sys/fs/cgroup/unified" if os.path.isdir("/sys/fs/cgroup/unified") else "/sys/fs/cgroup"
    own = os.path.join(base, v2[0].lstrip("/"), "cpu.pressure") if v2 and v2[0] != "/" else None
    if own and os.path.exists(own):
        # the container's figure: its total stall time, not the (much larger) host's
        total = int(lines[0].rsplit("total=", 1)[1])
        host_total = int(open("/proc/pressure/cpu").read().split("total=")[1].split()[0])
        assert total <= int(open(own).read().split("total=")[1].split()[0]) <= host_total
    assert sh(rt, cid, "echo 'some 150000 1000000' > /proc/pressure/memory").returncode != 0  # read-only


def test_host_processes_get_nothing(rt, make_bundle, cid):
    """Each container's nodes are on a connection of its own, mounted on the host below the
    base; only host root and the container's root may enter it."""
    start(rt, make_bundle, cid)
    assert not os.path.exists(os.path.join(rt.fs.mountpoint, "proc/uptime"))
    path = os.path.join(rt.fs.mountpoint, cid, "proc/uptime")
    as_nobody = subprocess.run(["setpriv", "--reuid", "65534", "--regid", "65534", "--clear-groups", "cat", path],
                               capture_output=True, text=True, timeout=10)
    assert as_nobody.returncode != 0 and "Permission denied" in as_nobody.stderr
    host_up = float(open("/proc/uptime").read().split()[0])
    assert float(open(path).read().split()[0]) < host_up  # host root sees the container's view


def test_nodes_are_owned_as_the_kernel_shows_them_inside(rt, make_bundle, cid):
    start(rt, make_bundle, cid)
    out = sh(rt, cid, "stat -c '%u:%g %n' /proc/uptime /proc/meminfo /proc/sys/kernel/panic "
                      "/proc/sys/net/ipv4/ip_forward /proc/sys/kernel/randomize_va_space /proc/sys")
    owners = dict(reversed(line.split(" ", 1)) for line in out.stdout.splitlines())
    assert owners["/proc/uptime"] == owners["/proc/meminfo"] == owners["/proc/sys/kernel/panic"] == "0:0"
    assert owners["/proc/sys/net/ipv4/ip_forward"] == "0:0"  # a knob of the netns the container owns
    assert owners["/proc/sys/kernel/randomize_va_space"] == "65534:65534"  # the host's, as in a raw procfs
    # the kernel applies the modes: a non-root user of the container cannot write
    denied = subprocess.run(["runc", "--root", rt.root, "exec", "--user", "1000:1000", cid, "sh", "-c",
                             "echo 5 > /proc/sys/kernel/panic"], capture_output=True, text=True, timeout=30)
    assert denied.returncode != 0 and "Permission denied" in denied.stderr, denied
    assert sh(rt, cid, "cat /proc/sys/kernel/panic").stdout != "5\n"


_WRITER = """i=0; bad=0
while [ $i -lt {n} ]; do
  echo 40000 > /proc/sys/kernel/pid_max; read v < /proc/sys/kernel/pid_max; [ "$v" = 40000 ] || bad=$((bad+1))
  echo abc > /proc/sys/kernel/pid_max 2>/dev/null; read v < /proc/sys/kernel/pid_max; [ "$v" = 40000 ] || bad=$((bad+1))
  echo 7 > /proc/sys/kernel/panic; read p < /proc/sys/kernel/panic; [ "$p" = 7 ] || bad=$((bad+1))
  i=$((i+1))
done
echo bad=$bad"""
_READER = """echo 32768 > /proc/sys/kernel/pid_max; echo 9 > /proc/sys/kernel/panic; i=0; bad=0
while [ $i -lt {n} ]; do
  read v < /proc/sys/kernel/pid_max; [ "$v" = 32768 ] || {{ bad=$((bad+1)); echo "got [$v]" >&2; }}
  read p < /proc/sys/kernel/panic; [ "$p" = 9 ] || bad=$((bad+1))
  i=$((i+1))
done
echo bad=$bad"""


def test_two_containers_hammering_the_same_knobs_never_see_each_other(rt, make_bundle, cid):
    """The interference of one shared inode (a truncating write cut another container's read
    short): each container writes, fails to write and reads the same knobs in a tight loop."""
    a, b = cid + "a", cid + "b"
    start(rt, make_bundle, a)
    start(rt, make_bundle, b)
    procs = [subprocess.Popen(rt.exec_argv(a, "sh", "-c", _WRITER.format(n=2000)), stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True),
             subprocess.Popen(rt.exec_argv(b, "sh", "-c", _READER.format(n=6000)), stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True)]
    try:
        outs = [p.communicate(timeout=240) for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    for (out, err), p in zip(outs, procs):
        assert p.returncode == 0 and out.strip() == "bad=0", (out, err[-2000:])


def test_unregistered_on_delete(rt, make_bundle, cid):
    start(rt, make_bundle, cid)
    assert cid in rt.fs_registered()
    assert rt("delete", "--force", cid).returncode == 0
    assert cid not in rt.fs_registered()


@pytest.mark.slow
def test_four_containers_reading_for_30_seconds(rt, make_bundle, cid):
    fs_pid = rt.fs.proc.pid
    start(rt, make_bundle, cid + "warm")  # the daemon creates a few descriptors on first use
    assert sh(rt, cid + "warm", "cat /proc/uptime /proc/sys/net/core/somaxconn").returncode == 0
    assert rt("delete", "--force", cid + "warm").returncode == 0
    fds_before = len(os.listdir(f"/proc/{fs_pid}/fd"))
    loop = ("end=$(( $(date +%s) + 30 )); n=0; err=0; "
            "while [ $(date +%s) -lt $end ]; do "
            "cat /proc/uptime /proc/meminfo /proc/cpuinfo /proc/stat /proc/loadavg /proc/sys/kernel/panic "
            "/proc/sys/net/core/somaxconn > /dev/null 2>&1 || err=$((err+1)); n=$((n+1)); done; echo $n $err")
    ids = [f"{cid}{i}" for i in range(4)]
    for c in ids:
        start(rt, make_bundle, c, args=("sh", "-c", loop + " > /tmp/result; sleep 300"))
    time.sleep(31)
    results = []
    for c in ids:
        for _ in range(50):
            out = sh(rt, c, "cat /tmp/result 2>/dev/null").stdout.split()
            if out:
                break
            time.sleep(0.2)
        results.append([int(x) for x in out])
    assert all(n > 100 and err == 0 for n, err in results), results
    assert set(ids) <= rt.fs_registered()
    for c in ids:
        assert rt("delete", "--force", c).returncode == 0
    assert not set(ids) & rt.fs_registered()
    deadline = time.monotonic() + 5  # the daemon closes our last control connection asynchronously
    while len(os.listdir(f"/proc/{fs_pid}/fd")) > fds_before and time.monotonic() < deadline:
        time.sleep(0.1)
    after = sorted(os.readlink(f"/proc/{fs_pid}/fd/{fd}") for fd in os.listdir(f"/proc/{fs_pid}/fd"))
    assert len(after) <= fds_before, after  # every namespace fd and handle closed


def test_procfs_mounted_inside_gets_the_emulated_nodes(rt, make_bundle, cid):
    start(rt, make_bundle, cid)
    assert sh(rt, cid, "echo 33 > /proc/sys/kernel/panic").returncode == 0
    out = sh(rt, cid, "mkdir -p /tmp/p && mount -t proc proc /tmp/p && cat /tmp/p/uptime /proc/uptime "
                      "/tmp/p/sys/kernel/panic && ls /tmp/p/1 >/dev/null && echo pid1-visible")
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    inner, outer = float(lines[0].split()[0]), float(lines[1].split()[0])
    assert abs(inner - outer) < 2 and inner < float(open("/proc/uptime").read().split()[0])
    assert lines[2:] == ["33", "pid1-visible"]  # the container's own values and pid namespace
    if os.path.exists("/proc/timer_list"):
        assert sh(rt, cid, "wc -c < /tmp/p/timer_list").stdout.strip() == "0"  # still masked
    un = sh(rt, cid, "cd /tmp && umount p && echo gone && grep -c ' /tmp/p[ /]' /proc/self/mountinfo")
    assert un.stdout.split() == ["gone", "0"]  # a plain umount works, the nodes on it included
    ro = sh(rt, cid, "mount -o ro -t proc proc /tmp/p && echo 5 > /tmp/p/sys/kernel/panic")
    assert ro.returncode != 0 and "Read-only file system" in ro.stderr
    assert sh(rt, cid, "umount -l /tmp/p && mount -t tmpfs t /mnt && umount /mnt && echo ok").stdout.strip() == "ok"
    assert rt.fs.call("status")["emulated_mounts"] >= 2


def test_trapped_mount_paths_resolve_inside_the_container(rt, make_bundle, cid, tmp_path):
    start(rt, make_bundle, cid)
    host_probe = tmp_path / "probe"
    host_probe.mkdir()
    script = (f"mkdir -p /tmp/real && ln -s /tmp/real /tmp/link && mount -t proc proc /tmp/link && "
              f"cd / && mkdir -p {host_probe} && mount -t proc proc ../../../..{host_probe} && "
              f"grep -c ' /tmp/real proc ' /proc/self/mountinfo; grep -c ' {host_probe} proc ' /proc/self/mountinfo")
    out = sh(rt, cid, script.replace(" proc ' ", " ' "))
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["1", "1"]  # both landed inside the container
    assert not os.path.ismount(host_probe) and os.listdir(host_probe) == []  # the host path is untouched


def test_trapped_mount_needs_cap_sys_admin(rt, make_bundle, cid):
    start(rt, make_bundle, cid)
    out = run_as(rt, cid, "1000", "mkdir -p /tmp/q; mount -t proc proc /tmp/q")
    assert out.returncode != 0
    assert sh(rt, cid, "grep -c ' /tmp/q ' /proc/self/mountinfo").stdout.strip() == "0"


def run_as(rt, cid: str, user: str, script: str) -> subprocess.CompletedProcess:
    return subprocess.run(["runc", "--root", rt.root, "exec", "--user", user, "--cwd", "/tmp", cid, "sh", "-c", script],
                          capture_output=True, text=True, timeout=30)


def test_product_uuid_unique_and_stable_and_own_net_devices(rt, make_bundle, cid):
    a, b = cid + "a", cid + "b"
    start(rt, make_bundle, a)
    start(rt, make_bundle, b)
    read = "cat /sys/devices/virtual/dmi/id/product_uuid"
    ua, ub = sh(rt, a, read).stdout.strip(), sh(rt, b, read).stdout.strip()
    assert len(ua) == 36 and ua != ub and ua == sh(rt, a, read).stdout.strip()
    assert sh(rt, a, "ls /sys/devices/virtual/net").stdout.split() == ["lo"]  # its own netns, not the host's
    assert sh(rt, a, "cat /sys/class/net/lo/address").stdout.strip() == "00:00:00:00:00:00"
