"""Fairness under attack: an innocent container's /proc reads while a neighbour floods the daemons.

Phases, one run, same two busybox containers (the raw-syscall helper integration/helpers/sysc.c
bound in):
- idle: the neighbour reads /proc/uptime alone;
- trap flood: the attacker makes N mounts (each one trapped; a mount table of N), then storms
  umount2 (on a directory that is not a mount point: each call is checked and answered EINVAL);
- fuse flood: the attacker runs 4 tight /proc/uptime readers.
For each: the neighbour's median and max latency per open+read+close, its failed reads, and the
daemons' fds and RSS before and after.  Writes bench/results/hostile.{md,json}.
Usage: python bench/hostile.py [--mounts N] [--storm M]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))

from bench.stack import Stack  # noqa: E402
from sysbox import images  # noqa: E402
from sysbox.oci.bundle import write_bundle  # noqa: E402


def rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmRSS:"))


def daemon_facts(stack: Stack) -> dict[str, int]:
    out = {}
    for name, d in (("fs", stack.fs), ("mgr", stack.mgr)):
        assert d.proc is not None and d.proc.poll() is None, f"sysbox-{name} died"
        out[f"{name}_fds"] = len(os.listdir(f"/proc/{d.proc.pid}/fd"))
        out[f"{name}_rss_kib"] = rss_kib(d.proc.pid)
    return out


def exec_(stack: Stack, cid: str, script: str, timeout: float = 600) -> str:
    out = subprocess.run(["runc", "--root", stack.root, "exec", cid, "sh", "-c", script], capture_output=True,
                         text=True, timeout=timeout, stdin=subprocess.DEVNULL)
    if out.returncode != 0:
        raise RuntimeError(f"{script}: {out.stderr}")
    return out.stdout


def neighbour_reads(stack: Stack, cid: str, until: threading.Event | None, rounds: int = 40) -> dict[str, float]:
    """Rounds of 100 reads (each round one exec), while `until` is unset; the medians of the
    rounds' medians, the worst max, and failures."""
    medians, maxes, fails = [], [], 0
    for _ in range(rounds if until is None else 10 ** 6):
        if until is not None and until.is_set() and medians:
            break
        f = dict(kv.split("=") for kv in exec_(stack, cid, "/home/sysc read /proc/uptime 100").split())
        medians.append(int(f["median_us"]))
        maxes.append(int(f["max_us"]))
        fails += int(f["fail"])
    medians.sort()
    return {"median_us": medians[len(medians) // 2], "max_us": max(maxes), "failed": fails, "rounds": len(medians)}


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--mounts", type=int, default=65000)
    ap.add_argument("--storm", type=int, default=5000, help="umount2 calls in the storm")
    args = ap.parse_args()
    rootfs = images.build("busybox")["rootfs"]
    helper = tempfile.mkdtemp(prefix="sysbox-sysc-")
    os.chmod(helper, 0o755)
    subprocess.run(["gcc", "-static", "-O2", "-o", os.path.join(helper, "sysc"),
                    os.path.join(os.path.dirname(HERE), "integration", "helpers", "sysc.c")], check=True)
    stack = Stack("hostile")
    results: dict[str, object] = {}
    try:
        for cid in ("attacker", "neighbour"):
            bundle = os.path.join(stack.work, cid)
            spec = write_bundle(bundle, rootfs, ["sleep", "3600"], readonly=True)
            spec["mounts"].append({"destination": "/home", "type": "bind", "source": helper,
                                   "options": ["rbind", "ro"]})
            with open(os.path.join(bundle, "config.json"), "w") as f:
                json.dump(spec, f)
            subprocess.run(stack.runtime + ["run", "-d", "--bundle", bundle, cid], check=True,
                           stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
        results["before"] = daemon_facts(stack)
        results["idle"] = neighbour_reads(stack, "neighbour", None)

        t0 = time.monotonic()
        made = int(exec_(stack, "attacker", f"mkdir -p /tmp/s && /home/sysc spread {args.mounts} /tmp/s").strip())
        results["stacked"] = {"mounts": made, "seconds": round(time.monotonic() - t0, 1)}

        def flood(script: str, done: threading.Event, out: dict[str, str]) -> None:
            try:
                out["result"] = exec_(stack, "attacker", script)
            finally:
                done.set()

        for phase, script in (
            ("trap_flood", f"/home/sysc loop {args.storm} umount /tmp/s 0"),
            ("fuse_flood", "for i in 1 2 3 4; do /home/sysc read /proc/uptime 200000 & done; wait"),
        ):
            done, out = threading.Event(), {}
            t = threading.Thread(target=flood, args=(script, done, out))
            t0 = time.monotonic()
            t.start()
            stats = neighbour_reads(stack, "neighbour", done)
            t.join(900)
            stats["flood_seconds"] = round(time.monotonic() - t0, 1)
            stats["flood_result"] = out.get("result", "").strip()[:200]
            results[phase] = stats
        results["after"] = daemon_facts(stack)
    finally:
        stack.stop()
        subprocess.run(["rm", "-rf", helper])
    write(results, args)
    return 0


def write(results: dict, args) -> None:
    os.makedirs(os.path.join(HERE, "results"), exist_ok=True)
    with open(os.path.join(HERE, "results", "hostile.json"), "w") as f:
        json.dump(results, f, indent=1)
    idle = results["idle"]
    lines = ["# Fairness under attack (bench/hostile.py)", "",
             f"Neighbour container: rounds of 100 open+read+close of /proc/uptime; attacker: {args.mounts} "
             f"mounts, then {args.storm} umount2 calls; then 4 tight /proc/uptime readers.", "",
             "| phase | neighbour median | neighbour max | / idle median | failed reads |",
             "|---|---|---|---|---|"]
    for phase in ("idle", "trap_flood", "fuse_flood"):
        r = results[phase]
        lines.append(f"| {phase} | {r['median_us']} us | {r['max_us']} us | "
                     f"{r['median_us'] / max(1, idle['median_us']):.2f}x | {r['failed']} |")
    b, a = results["before"], results["after"]
    lines += ["", "| daemon | fds before | fds after | RSS before | RSS after |", "|---|---|---|---|---|"]
    for d in ("fs", "mgr"):
        lines.append(f"| sysbox-{d} | {b[d + '_fds']} | {a[d + '_fds']} | {b[d + '_rss_kib']} KiB | "
                     f"{a[d + '_rss_kib']} KiB |")
    lines += ["", f"Making {results['stacked']['mounts']} mounts took {results['stacked']['seconds']} s "
              "(every mount(2) is trapped)."]
    with open(os.path.join(HERE, "results", "hostile.md"), "w") as f:
        f.write("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    sys.exit(main())
