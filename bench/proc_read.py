"""Read latency of emulated /proc nodes: native procfs, lxcfs and sysbox-fs, in one run.

Starts its own sysbox-mgr, sysbox-fs and lxcfs on private paths, boots one busybox system
container, and times open+read+close of its nodes on its own connection, from a reader in the
container's user namespace (a forked process that joined it, as its root).  lxcfs is read from
the same process.  Reports medians in microseconds and ratios to lxcfs, then throughput with
1, 4 and 16 concurrent readers.  Writes bench/results/proc_read.md.

Usage: python bench/proc_read.py [--reads N] [--seconds S]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))

from bench.stack import Stack  # noqa: E402
from sysbox import images  # noqa: E402
from sysbox.linux import syscalls as sc  # noqa: E402
from sysbox.oci.bundle import write_bundle  # noqa: E402

NODES = ["proc/uptime", "proc/meminfo", "proc/cpuinfo", "proc/stat", "proc/loadavg", "proc/sys/kernel/pid_max"]


def time_reads(path: str, n: int) -> float:
    """Median microseconds of open+read+close over n reads."""
    samples = []
    for _ in range(n):
        t0 = time.perf_counter_ns()
        fd = os.open(path, os.O_RDONLY)
        while os.read(fd, 65536):
            pass
        os.close(fd)
        samples.append(time.perf_counter_ns() - t0)
    return statistics.median(samples) / 1000


def in_container(userns_path: str, fn, *args):
    """Run fn in a forked child that joined the container's user namespace; return its result."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.close(r)
            sc.setns(os.open(userns_path, os.O_RDONLY), sc.CLONE_NEWUSER)
            os.write(w, json.dumps(fn(*args)).encode())
        finally:
            os._exit(0)
    os.close(w)
    data = b""
    while chunk := os.read(r, 65536):
        data += chunk
    os.close(r)
    os.waitpid(pid, 0)
    return json.loads(data)


def throughput(userns_path: str, path: str, readers: int, seconds: float) -> float:
    """Total reads per second with `readers` concurrent processes."""
    def loop(p: str, secs: float) -> int:
        end, n = time.monotonic() + secs, 0
        while time.monotonic() < end:
            fd = os.open(p, os.O_RDONLY)
            os.read(fd, 65536)
            os.close(fd)
            n += 1
        return n

    results = []
    pipes = []
    for _ in range(readers):
        r, w = os.pipe()
        pid = os.fork()
        if pid == 0:
            os.close(r)
            try:
                if userns_path:
                    sc.setns(os.open(userns_path, os.O_RDONLY), sc.CLONE_NEWUSER)
                os.write(w, str(loop(path, seconds)).encode())
            finally:
                os._exit(0)
        os.close(w)
        pipes.append((pid, r))
    for pid, r in pipes:
        results.append(int(os.read(r, 64) or b"0"))
        os.close(r)
        os.waitpid(pid, 0)
    return sum(results) / seconds


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reads", type=int, default=3000)
    ap.add_argument("--seconds", type=float, default=3.0)
    ap.add_argument("--rounds", type=int, default=6)
    args = ap.parse_args()
    stack = Stack("proc-read", lxcfs=True)
    runtime, fs, lxcfs_mnt, work = stack.runtime, stack.fs, stack.lxcfs_mnt, stack.work
    cid = f"bench-{os.getpid()}"
    try:
        rootfs = images.build("busybox")["rootfs"]
        bundle = os.path.join(work, "bundle")
        write_bundle(bundle, rootfs, ["sleep", "3600"], readonly=True)
        subprocess.run(runtime + ["run", "-d", "--bundle", bundle, cid], check=True,
                       stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
        pid = json.loads(subprocess.run(runtime + ["state", cid], capture_output=True, check=True).stdout)["pid"]
        userns = f"/proc/{pid}/ns/user"
        mnt = os.path.join(fs.mountpoint, cid)  # the container's own connection
        rows = []
        for node in NODES:
            # Interleaved rounds: the three sources are timed back to back in each round, so drift
            # on a shared 2-CPU VM hits them alike; the table shows the medians over rounds.
            lx_path = os.path.join(lxcfs_mnt, node)
            has_lx = os.path.exists(lx_path) and "/sys/" not in node
            per = max(1, args.reads // args.rounds)
            native, lx, ours = [], [], []
            for _ in range(args.rounds):
                native.append(time_reads("/" + node, per))
                if has_lx:
                    lx.append(time_reads(lx_path, per))
                ours.append(in_container(userns, time_reads, os.path.join(mnt, node), per))
            rows.append((node, statistics.median(native), statistics.median(lx) if lx else None,
                         statistics.median(ours)))
        tput = []
        for readers in (1, 4, 16):
            lx_t = throughput("", os.path.join(lxcfs_mnt, "proc/uptime"), readers, args.seconds)
            ours_t = throughput(userns, os.path.join(mnt, "proc/uptime"), readers, args.seconds)
            native_t = throughput("", "/proc/uptime", readers, args.seconds)
            tput.append((readers, native_t, lx_t, ours_t))
    finally:
        stack.stop()
    lines = [f"# /proc read latency ({time.strftime('%Y-%m-%d')}, kernel {os.uname().release}, "
             f"median of {args.reads} open+read+close in {args.rounds} interleaved rounds)", "",
             "Targets: within 2x native, at least 20x faster than lxcfs (lxcfs / sysbox-fs >= 20).", "",
             "| node | native us | lxcfs us | sysbox-fs us | sysbox-fs / native | lxcfs / sysbox-fs |",
             "|---|---|---|---|---|---|"]
    for node, native, lx, ours in rows:
        speedup = f"{lx / ours:.1f}x" if lx else "n/a (lxcfs does not emulate it)"
        lines.append(f"| /{node} | {native:.1f} | {f'{lx:.1f}' if lx else 'n/a'} | {ours:.1f} | {ours / native:.2f}x "
                     f"| {speedup} |")
    lines += ["", f"Throughput on /proc/uptime, reads per second ({args.seconds:.0f} s per point; target: "
              "sysbox-fs / lxcfs >= 5 at 16 readers):", "",
              "| readers | native | lxcfs | sysbox-fs | sysbox-fs / lxcfs |", "|---|---|---|---|---|"]
    for readers, native_t, lx_t, ours_t in tput:
        lines.append(f"| {readers} | {native_t:.0f} | {lx_t:.0f} | {ours_t:.0f} | {ours_t / lx_t:.2f}x |")
    report = "\n".join(lines) + "\n"
    os.makedirs(os.path.join(HERE, "results"), exist_ok=True)
    with open(os.path.join(HERE, "results", "proc_read.md"), "w") as f:
        f.write(report)
    with open(os.path.join(HERE, "results", "proc_read.json"), "w") as f:
        json.dump({"latency_us": {node: {"native": n, "lxcfs": lx, "sysbox-fs": o} for node, n, lx, o in rows},
                   "throughput": {str(r): {"native": n_t, "lxcfs": lx_t, "sysbox-fs": o_t} for r, n_t, lx_t, o_t in tput}}, f, indent=1)
    print(report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
