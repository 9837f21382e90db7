"""One chart of every ratio the benchmarks measured, against its target: bench/results/ratios.png.

Reads lifecycle.json, proc_read.json and load.json (written by the two runners in the same `make bench`)
and draws sysbox / anchor per measurement, with the issue's target as a mark.  matplotlib is
the optional `bench` extra; without it this says so and exits 0 (the tables are the record).
"""

from __future__ import annotations

import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
RESULTS = os.path.join(HERE, "results")


def ratios() -> list[tuple[str, float, float | None]]:
    """(label, sysbox / anchor, target or None), from whichever result files exist."""
    out: list[tuple[str, float, float | None]] = []
    try:
        with open(os.path.join(RESULTS, "lifecycle.json")) as f:
            life = json.load(f)
    except FileNotFoundError:
        life = {}
    ms = life.get("lifecycle_ms", {})
    if ms.get("runc") and ms.get("sysbox-runc"):
        out.append(("run `true` / runc", ms["sysbox-runc"] / ms["runc"], 1.3))
    for call, v in life.get("calls_ms", {}).items():
        if v.get("runc") and v.get("sysbox-runc"):
            out.append((f"{call} / runc", v["sysbox-runc"] / v["runc"], None))
    d = life.get("docker_run_ms", {})
    if d.get("runc") and d.get("sysbox-runc"):
        out.append(("docker run --rm / runc", d["sysbox-runc"] / d["runc"], 1.15))
    b = life.get("boot", {})
    if b.get("lxc") and b.get("sysbox-runc"):
        out.append(("systemd boot / LXC", b["sysbox-runc"] / b["lxc"], None))
    t = life.get("trap_us", {})
    if t.get("trapped") and t.get("untrapped"):
        out.append(("mount+umount trapped / not", t["trapped"] / t["untrapped"], None))
    try:
        with open(os.path.join(RESULTS, "proc_read.json")) as f:
            proc = json.load(f)
    except FileNotFoundError:
        proc = {}
    for node, v in proc.get("latency_us", {}).items():
        if v.get("lxcfs"):
            out.append((f"/{node} read / lxcfs", v["sysbox-fs"] / v["lxcfs"], 1.5))
    try:
        with open(os.path.join(RESULTS, "load.json")) as f:
            load = json.load(f)
        ours, theirs = load["sysbox-fs"], load["lxcfs"]
        out.append(("CPU per read, 50 pollers / lxcfs", (ours["cpu_pct"] / ours["reads_per_s"]) /
                    (theirs["cpu_pct"] / theirs["reads_per_s"]), None))
    except (FileNotFoundError, KeyError, ZeroDivisionError):
        pass
    return out


def main() -> int:
    rows = ratios()
    if not rows:
        print("chart: no results yet (run bench/lifecycle.py and bench/proc_read.py)")
        return 0
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("chart: matplotlib is not installed (pip install -e '.[bench]'); tables only")
        return 0
    fig, ax = plt.subplots(figsize=(8, 0.45 * len(rows) + 1.2))
    labels = [r[0] for r in rows][::-1]
    values = [r[1] for r in rows][::-1]
    targets = [r[2] for r in rows][::-1]
    colors = ["tab:green" if t and v <= t else "tab:red" if t else "tab:gray" for v, t in zip(values, targets)]
    ax.barh(labels, values, color=colors)
    for i, (v, t) in enumerate(zip(values, targets)):
        ax.text(v, i, f" {v:.2f}x", va="center", fontsize=8)
        if t:
            ax.plot([t, t], [i - 0.4, i + 0.4], color="black", linewidth=2)
    ax.axvline(1.0, color="gray", linestyle=":", linewidth=1)
    ax.set_xlabel("sysbox / anchor, same run\n(black mark: target; green met, red missed, gray: no target)")
    ax.set_title("sysbox-py against runc, Docker+runc, LXC and lxcfs")
    fig.tight_layout()
    path = os.path.join(RESULTS, "ratios.png")
    fig.savefig(path, dpi=110)
    print(f"chart: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
