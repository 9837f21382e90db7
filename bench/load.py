"""CPU under load: 50 containers polling /proc/{cpuinfo,meminfo,stat,uptime,swaps} in loops,
served once by sysbox-fs and once by lxcfs (bound into the same containers), in one run.

lxcfs has been reported at 270% CPU on such a load; this puts sysbox-fs's figure next to it,
with the reads each one served.  Writes bench/results/load.md.
Usage: python bench/load.py [--containers N] [--seconds S]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))

from bench.stack import Stack  # noqa: E402
from sysbox import images  # noqa: E402
from sysbox.oci.bundle import write_bundle  # noqa: E402

FILES = ["cpuinfo", "meminfo", "stat", "uptime", "swaps"]
TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def fs_requests(stack: Stack) -> int:
    return int(stack.fs.call("status").get("fuse_requests", 0))


def poll_phase(root: str, ids: list[str], prefix: str, seconds: float, daemon_pid: int) -> tuple[float, int]:
    """Every container polls the five files for `seconds`; returns (daemon CPU %, reads/s)."""
    paths = " ".join(f"{prefix}/proc/{f}" for f in FILES)
    loop = (f"end=$(( $(date +%s) + {int(seconds)} )); n=0; "
            f"while [ $(date +%s) -lt $end ]; do cat {paths} > /dev/null || exit 3; n=$((n+1)); done; echo $n")
    cpu0, t0 = cpu_seconds(daemon_pid), time.monotonic()
    procs = [subprocess.Popen(["runc", "--root", root, "exec", cid, "sh", "-c", loop], stdout=subprocess.PIPE,
                              stderr=subprocess.DEVNULL, text=True) for cid in ids]
    loops = 0
    for p in procs:
        out, _ = p.communicate(timeout=seconds + 120)
        if p.returncode != 0:
            raise SystemExit(f"a poller failed (exit {p.returncode}) on {prefix or 'sysbox-fs'}")
        loops += int(out.strip() or 0)
    wall = time.monotonic() - t0
    return 100 * (cpu_seconds(daemon_pid) - cpu0) / wall, int(loops * len(FILES) / wall)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--containers", type=int, default=50)
    ap.add_argument("--seconds", type=float, default=20)
    args = ap.parse_args()
    stack = Stack("load", lxcfs=True)
    work, root, rt, lx_mnt = stack.work, stack.root, stack.runtime, stack.lxcfs_mnt
    ids = [f"load-{i:02d}" for i in range(args.containers)]
    try:
        bundle = os.path.join(work, "bundle")
        spec = write_bundle(bundle, images.build("busybox")["rootfs"], ["sleep", "3600"], readonly=True)
        spec["mounts"].append({"destination": "/lxcfs", "type": "bind", "source": lx_mnt, "options": ["rbind", "ro"]})
        with open(os.path.join(bundle, "config.json"), "w") as f:
            json.dump(spec, f)
        for cid in ids:
            subprocess.run(rt + ["run", "-d", "--bundle", bundle, cid], check=True, stdin=subprocess.DEVNULL,
                           stdout=subprocess.DEVNULL)
        req0 = fs_requests(stack)
        ours = poll_phase(root, ids, "", args.seconds, stack.fs.proc.pid)
        requests = fs_requests(stack) - req0
        theirs = poll_phase(root, ids, "/lxcfs", args.seconds, stack.lxcfs.pid)
    finally:
        stack.stop()
    lines = [f"# CPU under polling load ({time.strftime('%Y-%m-%d')}, kernel {os.uname().release}, "
             f"{os.cpu_count()} CPUs)", "",
             f"{args.containers} containers, each reading /proc/{{{','.join(FILES)}}} in a loop for "
             f"{args.seconds:.0f} s; the same containers read lxcfs's files bound at /lxcfs.", "",
             "| daemon | CPU % (100 = one core) | reads served per s | CPU ms per 1000 reads |", "|---|---|---|---|"]
    for name, (cpu, rate) in (("sysbox-fs", ours), ("lxcfs", theirs)):
        lines.append(f"| {name} | {cpu:.0f} | {rate} | {cpu * 10000 / max(rate, 1):.1f} |")
    lines += ["", f"sysbox-fs received {requests / max(ours[1] * args.seconds, 1):.2f} FUSE requests per read "
              "(the rest were served by the page cache)."]
    report = "\n".join(lines) + "\n"
    os.makedirs(os.path.join(HERE, "results"), exist_ok=True)
    with open(os.path.join(HERE, "results", "load.md"), "w") as f:
        f.write(report)
    with open(os.path.join(HERE, "results", "load.json"), "w") as f:
        json.dump({"sysbox-fs": {"cpu_pct": ours[0], "reads_per_s": ours[1]},
                   "lxcfs": {"cpu_pct": theirs[0], "reads_per_s": theirs[1]}}, f, indent=1)
    print(report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
