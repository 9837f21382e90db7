"""sysbox-fs's node formatters: what a container reads, from its cgroup numbers and the host's files.

The host's /proc files are replaced by fixed text (host_read), and the container's cgroups by
fixed numbers; the formatting, the limits and the renumbering are the real code.  The same
files read through a real FUSE mount in a real container are integration/test_fs.py's.
"""

from __future__ import annotations

from typing import Any

import pytest

from sysbox.fs import nodes
from sysbox.fs.cgroupview import UNLIMITED
from sysbox.fs.nodes import (proc_cpuinfo, proc_diskstats, proc_loadavg, proc_meminfo, proc_stat, proc_swaps,
                             proc_uptime, sys_cpu_online)

MEMINFO = """MemTotal:       24000000 kB
MemFree:        20000000 kB
MemAvailable:   22000000 kB
Buffers:          100000 kB
Cached:          1000000 kB
SwapCached:            0 kB
Active:           500000 kB
Slab:             300000 kB
SReclaimable:     200000 kB
SUnreclaim:       100000 kB
SwapTotal:       2000000 kB
SwapFree:        2000000 kB
HugePages_Total:       0
"""
CPUINFO = "".join(f"processor\t: {n}\nmodel name\t: Test CPU\n\n" for n in range(4))
STAT = """cpu  100 0 100 1000 0 0 0 0 0 0
cpu0 25 0 25 250 0 0 0 0 0 0
intr 12345
ctxt 999
btime 1700000000
processes 4242
"""
DISKSTATS = """   8       0 sda 10 0 80 0 5 0 40 0 0 0 0 0 0 0 0 0 0
   8       1 sda1 1 0 8 0 1 0 8 0 0 0 0 0 0 0 0 0 0
 253       0 dm-0 7 0 56 0 3 0 24 0 0 0 0 0 0 0 0 0 0
"""
HOST = {"/proc/meminfo": MEMINFO, "/proc/cpuinfo": CPUINFO, "/proc/stat": STAT, "/proc/diskstats": DISKSTATS,
        "/proc/loadavg": "0.50 0.40 0.30 2/300 31337\n", "/sys/devices/system/cpu/online": "0-3\n"}


class FakeCgroups:
    def __init__(self, memory: dict[str, int] | None = None, cpus: list[int] | None = None,
                 usage: dict[int, tuple[int, int]] | None = None, io: dict[str, dict[str, int]] | None = None,
                 task_dirs: list[str] | None = None) -> None:
        self._memory, self._cpus, self._usage = memory or {}, cpus, usage or {}
        self._io, self._task_dirs = io or {}, task_dirs or []

    def memory(self) -> dict[str, int]:
        return self._memory

    def cpus(self, online: list[int]) -> list[int]:
        return [c for c in online if self._cpus is None or c in self._cpus]

    def cpu_usage(self) -> dict[int, tuple[int, int]]:
        return self._usage

    def io(self) -> dict[str, dict[str, int]]:
        return self._io

    def task_dirs(self) -> list[str]:
        return self._task_dirs


class FakeContainer:
    def __init__(self, cgroups: FakeCgroups, uptime: float = 100.0) -> None:
        self.cgroups = cgroups
        self._uptime = uptime
        self.load = [0.0, 0.0, 0.0]
        self.load_tasks = (0, 0)

    def uptime(self) -> float:
        return self._uptime


@pytest.fixture(autouse=True)
def host_files(monkeypatch):
    def read(path: str) -> bytes:
        return HOST[path].encode()

    for mod in (nodes, proc_cpuinfo, proc_diskstats, proc_loadavg, proc_meminfo, proc_stat, sys_cpu_online):
        monkeypatch.setattr(mod, "host_read", read, raising=False)
    monkeypatch.setattr(nodes, "_HOST", {})


def fields(text: bytes) -> dict[str, int]:
    out = {}
    for line in text.decode().splitlines():
        key, _, rest = line.partition(":")
        out[key] = int(rest.split()[0])
    return out


MEM = {"limit": 1 << 30, "usage": 256 << 20, "cache": 64 << 20, "swap_limit": UNLIMITED, "swap_usage": 0,
       "active_anon": 100 << 20, "inactive_anon": 50 << 20, "active_file": 30 << 20, "inactive_file": 20 << 20,
       "shmem": 1 << 20, "slab_reclaimable": 8 << 20, "slab_unreclaimable": 4 << 20}


def read(node: Any, c: Any) -> bytes:
    data: bytes = node.read(c)
    return data


def test_meminfo_shows_the_memory_limit_and_keeps_the_host_layout():
    out = read(proc_meminfo.Meminfo(), FakeContainer(FakeCgroups(memory=MEM)))
    f = fields(out)
    assert f["MemTotal"] == 1 << 20  # KiB
    assert f["MemFree"] == (1 << 20) - (256 << 10)
    assert f["MemAvailable"] == f["MemFree"] + (64 << 10)
    assert f["Cached"] == 64 << 10 and f["Buffers"] == 0
    assert f["SwapTotal"] == 0 and f["SwapFree"] == 0  # no swap limit: no swap shown, not the host's
    assert f["HugePages_Total"] == 0
    assert f["SReclaimable"] == 8 << 10 and f["Slab"] == 12 << 10  # the container's slab, not the host's
    assert [line.split(":")[0] for line in out.decode().splitlines()] == \
        [line.split(":")[0] for line in MEMINFO.splitlines()]
    assert out.decode().splitlines()[0] == "MemTotal:        1048576 kB"


def test_meminfo_limit_above_the_host_shows_the_host():
    out = read(proc_meminfo.Meminfo(), FakeContainer(FakeCgroups(memory={**MEM, "limit": UNLIMITED})))
    assert fields(out)["MemTotal"] == 24000000


def test_meminfo_without_a_memory_cgroup_is_the_hosts():
    out = read(proc_meminfo.Meminfo(), FakeContainer(FakeCgroups()))
    assert fields(out) == fields(MEMINFO.encode())


def test_cpuinfo_lists_only_the_allowed_cpus_renumbered():
    out = read(proc_cpuinfo.Cpuinfo(), FakeContainer(FakeCgroups(cpus=[1, 3]))).decode()
    assert [b.splitlines()[0] for b in out.split("\n\n") if b] == ["processor\t: 0", "processor\t: 1"]


def test_cpu_online_counts_the_allowed_cpus_from_0():
    assert read(sys_cpu_online.Online(), FakeContainer(FakeCgroups(cpus=[1, 2, 3]))) == b"0-2\n"
    assert read(sys_cpu_online.Online(), FakeContainer(FakeCgroups(cpus=[2]))) == b"0\n"


def test_stat_cpu_lines_from_the_cgroup_usage_and_the_containers_boot_time(monkeypatch):
    monkeypatch.setattr(proc_stat.time, "time", lambda: 1800000000.0)
    usage = {0: (2 * 10**9, 10**9), 2: (4 * 10**9, 0)}
    out = read(proc_stat.Stat(), FakeContainer(FakeCgroups(cpus=[0, 2], usage=usage), uptime=100.0)).decode()
    lines = out.splitlines()
    hz = proc_stat.HZ
    assert lines[1] == f"cpu0 {2 * hz} 0 {hz} {100 * hz - 3 * hz} 0 0 0 0 0 0"
    assert lines[2] == f"cpu1 {4 * hz} 0 0 {100 * hz - 4 * hz} 0 0 0 0 0 0"  # host cpu2, renumbered
    assert lines[0] == f"cpu  {6 * hz} 0 {hz} {200 * hz - 7 * hz} 0 0 0 0 0 0"
    assert "btime 1799999900" in lines and "ctxt 999" in lines and "processes 4242" in lines
    assert not any(line.startswith("cpu3") for line in lines)


def test_stat_spreads_v2_totals_over_the_cpus():
    out = read(proc_stat.Stat(), FakeContainer(FakeCgroups(cpus=[0, 1], usage={-1: (2 * 10**9, 0)}))).decode()
    hz = proc_stat.HZ
    assert out.splitlines()[1].startswith(f"cpu0 {hz} 0 0 ") and out.splitlines()[2].startswith(f"cpu1 {hz} 0 0 ")


def test_uptime_is_the_containers_and_idle_is_scaled_to_its_cpus():
    out = read(proc_uptime.Uptime(), FakeContainer(FakeCgroups(cpus=[0, 1], usage={0: (10 * 10**9, 0)}),
                                                   uptime=50.0))
    assert out == b"50.00 90.00\n"  # 2 cpus x 50 s, less 10 s busy


def test_diskstats_shows_only_devices_the_container_used():
    io = {"8:0": {"rios": 3, "wios": 2, "rbytes": 4096, "wbytes": 1024}}
    out = read(proc_diskstats.Diskstats(), FakeContainer(FakeCgroups(io=io))).decode()
    assert out == "   8       0 sda 3 0 8 0 2 0 2" + " 0" * 10 + "\n"  # 512-byte sectors
    assert read(proc_diskstats.Diskstats(), FakeContainer(FakeCgroups())) == b""


def test_swaps_has_only_the_header():
    assert read(proc_swaps.Swaps(), FakeContainer(FakeCgroups())).decode().split() == \
        ["Filename", "Type", "Size", "Used", "Priority"]


def test_loadavg_formats_the_damped_counts_with_the_hosts_last_pid():
    c = FakeContainer(FakeCgroups())
    c.load, c.load_tasks = [1.234, 0.5, 0.0], (2, 40)
    assert read(proc_loadavg.Loadavg(), c) == b"1.23 0.50 0.00 2/40 31337\n"


def test_loadavg_sample_counts_runnable_tasks_and_decays(tmp_path, monkeypatch):
    d = tmp_path / "cg"
    d.mkdir()
    (d / "cgroup.threads").write_text("11\n12\n13\n")
    states = {"11": "R", "12": "S", "13": "D"}
    monkeypatch.setattr(proc_loadavg, "task_state", lambda tid: states.get(tid))
    c = FakeContainer(FakeCgroups(task_dirs=[str(d)]))
    proc_loadavg.sample(c)
    assert c.load_tasks == (2, 3)
    assert c.load[0] == pytest.approx(2 * (1 - proc_loadavg.DECAY[0]))
    first = list(c.load)
    proc_loadavg.sample(c)
    assert all(b > a for a, b in zip(first, c.load, strict=True))  # rising towards 2


def test_loadavg_sample_is_bounded(tmp_path, monkeypatch):
    d = tmp_path / "cg"
    d.mkdir()
    (d / "cgroup.threads").write_text("\n".join(str(i) for i in range(proc_loadavg.MAX_TASKS + 500)))
    seen: list[str] = []
    monkeypatch.setattr(proc_loadavg, "task_state", lambda tid: seen.append(tid) or "R")
    c = FakeContainer(FakeCgroups(task_dirs=[str(d), str(d)]))
    proc_loadavg.sample(c)
    assert len(seen) == proc_loadavg.MAX_TASKS and c.load_tasks == (proc_loadavg.MAX_TASKS, proc_loadavg.MAX_TASKS)


def test_sysinfo_is_the_containers_memory_uptime_and_load():
    import struct

    from sysbox.fs.trap import sysinfo

    c = FakeContainer(FakeCgroups(memory={**MEM, "swap_limit": 512 << 20, "swap_usage": 1 << 20}), uptime=42.7)
    c.load, c.load_tasks = [1.5, 0.25, 0.0], (1, 37)
    raw = sysinfo.build(c)  # type: ignore[arg-type]
    assert len(raw) == sysinfo.SIZE == 112
    up, l1, l5, l15, total, free, shared, buffers, stotal, sfree, procs = struct.unpack_from("=q3Q6QH", raw)
    assert (up, l1, l5, l15) == (42, 98304, 16384, 0)
    assert (total, free, shared, buffers) == (1 << 30, (1 << 30) - (256 << 20), 1 << 20, 0)
    assert (stotal, sfree, procs) == (512 << 20, 511 << 20, 37)
    assert struct.unpack_from("=I", raw, 104)[0] == 1  # mem_unit
    host = sysinfo.build(FakeContainer(FakeCgroups(memory={})))  # type: ignore[arg-type]
    assert struct.unpack_from("=q3Q2Q", host)[4] == 24000000 * 1024  # no memory cgroup: the host's


def test_writable_follows_the_callers_page_protections(tmp_path):
    """On this process's own maps: /proc/PID/mem would write through a read-only page; the
    check refuses where the kernel's copy-out would fault."""
    import ctypes
    import mmap
    import os

    from sysbox.linux import procmem

    path = tmp_path / "ro"
    path.write_bytes(b"x" * 8192)
    with open(path, "rb") as f:
        ro = mmap.mmap(f.fileno(), 8192, prot=mmap.PROT_READ)
    rw = mmap.mmap(-1, 8192)
    buf = ctypes.c_char.from_buffer(rw)
    try:
        ro_addr = next(int(line.split("-")[0], 16) for line in open("/proc/self/maps") if line.rstrip().endswith(str(path)))
        me = os.getpid()
        assert procmem.writable(me, ctypes.addressof(buf), 112)
        assert not procmem.writable(me, ro_addr, 112)
        assert not procmem.writable(me, 0, 112)  # unmapped
    finally:
        del buf
        rw.close()
        ro.close()
