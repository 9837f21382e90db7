"""Load: 20 system containers at once, each reading emulated nodes and mounting in a loop for
60 seconds; no error, nothing leaked, and the daemons' memory and fds flat once the load ends.
(The CPU comparison with lxcfs under 50 polling containers is a benchmark: bench/load.py.)"""

from __future__ import annotations

import os
import time

import pytest

from integration.conftest import run

CONTAINERS = 20
SECONDS = 60
LOOP = ("end=$(( $(date +%s) + {secs} )); n=0; rerr=0; merr=0; "
        "while [ $(date +%s) -lt $end ]; do "
        "  cat /proc/uptime /proc/meminfo /proc/cpuinfo /proc/stat /proc/loadavg /proc/swaps "
        "      /proc/sys/kernel/panic /sys/devices/system/cpu/online > /dev/null || rerr=$((rerr+1)); "
        "  echo $n > /proc/sys/kernel/panic || rerr=$((rerr+1)); "
        "  mount -t tmpfs t /mnt && umount /mnt || merr=$((merr+1)); "
        "  mount -t proc proc /mnt && [ -s /mnt/uptime ] && umount /mnt || merr=$((merr+1)); "
        "  n=$((n+1)); "
        "done; echo \"$n $rerr $merr\" > /tmp/result; exec sleep 600")


def rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmRSS:"))


def fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


@pytest.mark.slow
@pytest.mark.serial
def test_twenty_containers_reading_and_mounting_for_a_minute(rt, make_bundle, cid):
    fs_pid, mgr_pid = rt.fs.proc.pid, rt.mgr.proc.pid
    # warm up once (a container with trapped mounts and sysctl writes): what the daemons set up
    # lazily on first use is not a leak
    warm = make_bundle(["sh", "-c", LOOP.format(secs=2).replace("exec sleep 600", "true")], name="warm")
    assert rt("run", "--bundle", warm, cid + "-warm").returncode == 0
    before = {"fs_rss": rss_kib(fs_pid), "mgr_rss": rss_kib(mgr_pid), "fs_fds": fds(fs_pid),
              "mgr_fds": fds(mgr_pid)}
    bundle = make_bundle(["sh", "-c", LOOP.format(secs=SECONDS)])  # read-only root: /tmp is a tmpfs
    ids = [f"{cid}-{i:02d}" for i in range(CONTAINERS)]
    for c in ids:
        out = rt("run", "-d", "--bundle", bundle, c)
        assert out.returncode == 0, out.stderr
    during = {"fs_rss": rss_kib(fs_pid), "fs_fds": fds(fs_pid)}
    deadline = time.monotonic() + SECONDS + 120
    results: dict[str, list[int]] = {}
    while len(results) < len(ids) and time.monotonic() < deadline:
        time.sleep(2)
        for c in ids:
            if c not in results:
                out = run(["runc", "--root", rt.root, "exec", c, "cat", "/tmp/result"])
                if out.returncode == 0 and out.stdout.strip():
                    results[c] = [int(x) for x in out.stdout.split()]
    assert len(results) == len(ids), f"finished: {len(results)} of {len(ids)}"
    loops = sum(r[0] for r in results.values())
    errors = {c: r[1:] for c, r in results.items() if r[1] or r[2]}
    print(f"{CONTAINERS} containers x {SECONDS} s: {loops} loops ({loops * 9} emulated reads/writes, "
          f"{loops * 2} mount+umount pairs), errors {errors or 'none'}; sysbox-fs RSS {before['fs_rss']} -> "
          f"{during['fs_rss']} KiB during")
    assert not errors
    assert all(r[0] > 0 for r in results.values())
    for c in ids:
        assert rt("delete", "--force", c).returncode == 0
    time.sleep(1)
    after = {"fs_rss": rss_kib(fs_pid), "mgr_rss": rss_kib(mgr_pid), "fs_fds": fds(fs_pid), "mgr_fds": fds(mgr_pid)}
    print(f"after: {after} (before: {before})")
    assert after["fs_fds"] <= before["fs_fds"] and after["mgr_fds"] <= before["mgr_fds"]
    # flat: a few MiB of Python heap may stay, nothing per container or per request
    assert after["fs_rss"] - before["fs_rss"] < 16 * 1024
    assert after["mgr_rss"] - before["mgr_rss"] < 8 * 1024
