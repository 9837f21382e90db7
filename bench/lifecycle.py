"""Runtime costs side by side, in one run: sysbox-runc next to runc (and crun where it runs).

1. OCI lifecycle: `run` of the busybox bundle running `true` (create+start+wait+delete).
2. The calls containerd makes most: state, kill (signal 0), ps, on a running container.
3. `docker run --rm local/busybox true`, runc vs sysbox-runc (dockerd in its own netns).
4. System-container boot: `run -d` of debian-systemd to `systemctl is-system-running` = running.
5. A trapped syscall: mount+umount of a tmpfs inside, with the seccomp trap and without.
6. Density: 50 busybox system containers; start time of the 1st vs the 50th; daemons' memory.

Medians of repeated runs; ratios are sysbox-runc / runc measured in the same run, with the
runtimes' repetitions interleaved where they are compared.  Writes
bench/results/lifecycle.md.  Usage: python bench/lifecycle.py [--reps N] [--density N]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))

from bench.stack import Stack  # noqa: E402
from integration.cleanup import remove_tree  # noqa: E402
from integration.dockerd import DockerDaemon  # noqa: E402
from sysbox import images  # noqa: E402
from sysbox.oci.bundle import write_bundle  # noqa: E402



def timed(argv: list[str]) -> tuple[float, subprocess.CompletedProcess]:
    """Wall time of a command.  Output goes through files, not pipes: `run -d` hands its stdio
    to the container, which would keep a pipe open (and us waiting) for the container's life."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        t0 = time.perf_counter()
        proc = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=err)
        elapsed = time.perf_counter() - t0
        out.seek(0)
        err.seek(0)
        return elapsed, subprocess.CompletedProcess(argv, proc.returncode, out.read().decode(errors="replace"),
                                                    err.read().decode(errors="replace"))


def median_ms(argvs, reps: int) -> tuple[float | None, str]:
    """Median wall time (ms) of running each argv produced by argvs(i); (None, error) on failure."""
    samples = []
    for i in range(reps):
        t, out = timed(argvs(i))
        if out.returncode != 0:
            return None, (out.stderr.strip().splitlines() or ["exit %d" % out.returncode])[-1][:120]
        samples.append(t * 1000)
    return statistics.median(samples), ""


def interleaved_ms(argvs: dict, reps: int) -> dict[str, tuple[float | None, str]]:
    """median_ms for several commands, their runs interleaved (a, b, a, b, ...): a burst of load
    on this shared machine then slows each alike, and the same-run ratio stays fair."""
    samples: dict[str, list[float]] = {name: [] for name in argvs}
    errors: dict[str, str] = {}
    for i in range(reps):
        for name, make in argvs.items():
            if name in errors:
                continue
            t, out = timed(make(i))
            if out.returncode != 0:
                errors[name] = (out.stderr.strip().splitlines() or ["exit %d" % out.returncode])[-1][:120]
                continue
            samples[name].append(t * 1000)
    return {name: (None, errors[name]) if name in errors else (statistics.median(v), "")
            for name, v in samples.items()}


def rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def fmt(v: float | None, err: str = "") -> str:
    return f"{v:.1f}" if v is not None else f"n/a ({err})" if err else "n/a"


def ratio(a: float | None, b: float | None) -> str:
    return f"{a / b:.2f}x" if a and b else "n/a"


LXC_CONFIG = """lxc.include = /usr/share/lxc/config/common.conf
lxc.include = /usr/share/lxc/config/userns.conf
lxc.uts.name = {name}
lxc.rootfs.path = dir:{rootfs}
lxc.rootfs.options = idmap=container
lxc.idmap = u 0 {base} 65536
lxc.idmap = g 0 {base} 65536
lxc.net.0.type = empty
lxc.apparmor.profile = unconfined
lxc.init.cmd = /sbin/init
"""
LXC_BASE = 200000  # below the manager's pool (1048576+), so the two never overlap


def lxc_boot(image_rootfs: str, work: str, reps: int = 3) -> tuple[list[tuple[float, str]], str]:
    """Boot the same debian-systemd rootfs with LXC, unprivileged (idmapped rootfs, userns),
    until `systemctl is-system-running` answers running/degraded, polled through lxc-attach as
    ours is through runc exec.  newuidmap insists that root own the mapped range in
    /etc/subuid, so a root line is added for the measurement and the files are restored after.
    LXC cannot idmap an overlay mount, so it boots a copy of the rootfs (made before timing)."""
    if not shutil.which("lxc-start"):
        return [], "lxc not installed (apt-get install lxc)"
    path = os.path.join(work, "lxc")
    rootfs = os.path.join(path, "rootfs")
    os.makedirs(os.path.join(path, "c"))
    for d in (work, path):  # the container's root (a mapped uid) must be able to reach its rootfs
        os.chmod(d, 0o711)
    logfile = os.path.join(path, "lxc.log")
    subprocess.run(["cp", "-a", image_rootfs, rootfs], check=True)
    with open(os.path.join(path, "c", "config"), "w") as f:
        f.write(LXC_CONFIG.format(name="sysbox-bench", rootfs=rootfs, base=LXC_BASE))
    saved = {}
    for name in ("/etc/subuid", "/etc/subgid"):
        with open(name) as f:
            saved[name] = f.read()
    boots: list[tuple[float, str]] = []
    from integration import cgroupdirs

    cgroups_before = cgroupdirs.snapshot()
    try:
        for name, text in saved.items():
            with open(name, "a") as f:
                f.write(f"root:{LXC_BASE}:65536\n")
        for _ in range(reps):
            t0 = time.perf_counter()
            out = subprocess.run(["lxc-start", "-n", "c", "-P", path, "-d", "-l", "ERROR", "-o", logfile],
                                 capture_output=True, text=True)
            if out.returncode != 0:
                with open(logfile) as f:
                    errors = [line.split(" - ", 1)[-1].strip() for line in f if " ERROR " in line]
                return boots, (errors or ["lxc-start failed"])[0][:160]
            status = ""
            while time.perf_counter() - t0 < 60 and status not in ("running", "degraded"):
                status = subprocess.run(["lxc-attach", "-n", "c", "-P", path, "--", "systemctl", "is-system-running"],
                                        capture_output=True, text=True).stdout.strip()
            boots.append((time.perf_counter() - t0, status))
            subprocess.run(["lxc-stop", "-n", "c", "-P", path, "-k"], capture_output=True, timeout=60)
    finally:
        subprocess.run(["lxc-stop", "-n", "c", "-P", path, "-k"], capture_output=True, timeout=60)
        for name, text in saved.items():
            with open(name, "w") as f:
                f.write(text)
        remove_tree(path)
        cgroupdirs.prune(cgroups_before, ("lxc.",))  # LXC leaves lxc.monitor.<name> and lxc.pivot behind
    return boots, ""


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=15)
    ap.add_argument("--density", type=int, default=50)
    args = ap.parse_args()
    stack = Stack("lifecycle", gc_interval=3600)
    work, root, sysbox, mgr, fs = stack.work, stack.root, stack.runtime, stack.mgr, stack.fs
    plain = {"runc": ["runc", "--root", root], "crun": ["crun", "--root", root] if shutil.which("crun") else None}
    bb = images.build("busybox")
    bundle = os.path.join(work, "bundle")
    write_bundle(bundle, bb["rootfs"], ["true"], readonly=True)
    rows: list[str] = []
    figures: dict = {}  # the same numbers, for bench/chart.py
    overlay = os.path.join(work, "ov")
    try:
        # 1. lifecycle
        bases = {"runc": plain["runc"], "crun": plain["crun"], "sysbox-runc": sysbox}
        life = interleaved_ms({name: (lambda i, b=base, n=name: b + ["run", "--bundle", bundle, f"life-{n}-{i}"])
                               for name, base in bases.items() if base is not None}, args.reps)
        life = {name: life.get(name, (None, "not installed")) for name in bases}
        rows += ["## OCI lifecycle: run of busybox `true` (create+start+wait+delete), median ms", "",
                 "| runtime | ms | / runc |", "|---|---|---|"]
        for name, (v, err) in life.items():
            rows.append(f"| {name} | {fmt(v, err)} | {ratio(v, life['runc'][0])} |")
        figures["lifecycle_ms"] = {name: v for name, (v, _) in life.items()}

        # 2. hot calls on a running container
        sleeper = os.path.join(work, "sleeper")
        write_bundle(sleeper, bb["rootfs"], ["sleep", "3600"], readonly=True)
        subprocess.run(["runc", "--root", root, "run", "-d", "--bundle", sleeper, "hot-runc"], check=True,
                       stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
        subprocess.run(sysbox + ["run", "-d", "--bundle", sleeper, "hot-sysbox"], check=True,
                       stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
        rows += ["", "## Calls containerd makes most, on a running container, median ms", "",
                 "| call | runc | sysbox-runc | ratio |", "|---|---|---|---|"]
        for call in (["state"], ["kill", "{id}", "0"], ["ps"]):
            def argv(base, cid, c=call):
                return base + [x.replace("{id}", cid) for x in c] + ([cid] if "{id}" not in " ".join(c) else [])
            both = interleaved_ms({"runc": lambda i: argv(plain["runc"], "hot-runc"),
                                   "sysbox-runc": lambda i: argv(sysbox, "hot-sysbox")}, args.reps * 2)
            r, s = both["runc"][0], both["sysbox-runc"][0]
            rows.append(f"| {call[0]} | {fmt(r)} | {fmt(s)} | {ratio(s, r)} |")
            figures.setdefault("calls_ms", {})[call[0]] = {"runc": r, "sysbox-runc": s}
        subprocess.run(["runc", "--root", root, "delete", "-f", "hot-runc"], capture_output=True)
        subprocess.run(sysbox + ["delete", "-f", "hot-sysbox"], capture_output=True)

        # 5. trapped syscall (a loop inside, timed from outside, per iteration)
        loop = "i=0; while [ $i -lt 200 ]; do mount -t tmpfs t /mnt && umount /mnt; i=$((i+1)); done"
        trap_bundle = os.path.join(work, "trap")
        write_bundle(trap_bundle, bb["rootfs"], ["sh", "-c", loop], readonly=True)
        with_trap = median_ms(lambda i: sysbox + ["run", "--bundle", trap_bundle, f"trap-{i}"], 5)[0]
        no_trap = median_ms(lambda i: [sysbox[0], "--no-sysbox-fs"] + sysbox[1:] + ["run", "--bundle", trap_bundle,
                                                                                  f"notrap-{i}"], 5)[0]
        empty = os.path.join(work, "empty")
        write_bundle(empty, bb["rootfs"], ["true"], readonly=True)
        base_with = median_ms(lambda i: sysbox + ["run", "--bundle", empty, f"e1-{i}"], 5)[0]
        base_without = median_ms(lambda i: [sysbox[0], "--no-sysbox-fs"] + sysbox[1:] + ["run", "--bundle", empty,
                                                                                       f"e2-{i}"], 5)[0]
        per_with = (with_trap - base_with) / 200 * 1000 if with_trap and base_with else None
        per_without = (no_trap - base_without) / 200 * 1000 if no_trap and base_without else None
        figures["trap_us"] = {"trapped": per_with, "untrapped": per_without}
        rows += ["", "## mount -t tmpfs + umount inside a container, us per pair", "",
                 "| trapped (seccomp notify, sysbox-fs) | not trapped | ratio |", "|---|---|---|",
                 f"| {fmt(per_with)} | {fmt(per_without)} | {ratio(per_with, per_without)} |"]

        # 4. boot
        for d in ("upper", "work", "rootfs"):
            os.makedirs(os.path.join(overlay, d))
        deb = images.build("debian-systemd")
        boots = []
        for i in range(3):
            for d in ("upper", "work"):
                shutil.rmtree(os.path.join(overlay, d))
                os.makedirs(os.path.join(overlay, d))
            subprocess.run(["mount", "-t", "overlay", "overlay", "-o",
                            f"lowerdir={deb['rootfs']},upperdir={overlay}/upper,workdir={overlay}/work",
                            f"{overlay}/rootfs"], check=True)
            sd = os.path.join(work, f"sd{i}")
            write_bundle(sd, f"{overlay}/rootfs", ["/sbin/init"])
            t0 = time.perf_counter()
            subprocess.run(sysbox + ["run", "-d", "--bundle", sd, f"boot-{i}"], check=True,
                           stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
            status = ""
            while time.perf_counter() - t0 < 60 and status not in ("running", "degraded"):
                status = subprocess.run(["runc", "--root", root, "exec", f"boot-{i}", "systemctl", "is-system-running"],
                                        capture_output=True, text=True).stdout.strip()
            boots.append((time.perf_counter() - t0, status))
            subprocess.run(sysbox + ["kill", f"boot-{i}", "TERM"], capture_output=True)
            deadline = time.monotonic() + 20
            while '"stopped"' not in subprocess.run(sysbox + ["state", f"boot-{i}"], capture_output=True, text=True).stdout \
                    and time.monotonic() < deadline:
                time.sleep(0.05)
            subprocess.run(sysbox + ["delete", "-f", f"boot-{i}"], capture_output=True)
            subprocess.run(["umount", f"{overlay}/rootfs"], check=True)
        lxc_boots, lxc_err = lxc_boot(deb["rootfs"], work)
        ours_boot = statistics.median(b[0] for b in boots)
        lxc_cell = (f"{statistics.median(b[0] for b in lxc_boots):.2f} | {lxc_boots[-1][1]} | "
                    f"{ours_boot / statistics.median(b[0] for b in lxc_boots):.2f}x" if lxc_boots and not lxc_err
                    else f"n/a ({lxc_err}) | | ")
        figures["boot"] = {"sysbox-runc": ours_boot,
                           "lxc": statistics.median(b[0] for b in lxc_boots) if lxc_boots and not lxc_err else None}
        rows += ["", "## System-container boot: run -d of debian-systemd until systemd answers", "",
                 "| runtime | seconds (median of 3) | state | sysbox-runc / LXC |", "|---|---|---|---|",
                 f"| sysbox-runc | {ours_boot:.2f} | {boots[-1][1]} | |", f"| LXC (lxc-start, idmapped rootfs) | {lxc_cell} |"]

        # 6. density
        mgr_rss0, fs_rss0 = rss_kib(mgr.proc.pid), rss_kib(fs.proc.pid)
        starts = []
        for i in range(args.density):
            t, out = timed(sysbox + ["run", "-d", "--bundle", sleeper, f"dense-{i}"])
            if out.returncode != 0:
                break
            starts.append(t * 1000)
        mgr_rss1, fs_rss1 = rss_kib(mgr.proc.pid), rss_kib(fs.proc.pid)
        for i in range(len(starts)):
            subprocess.run(sysbox + ["delete", "-f", f"dense-{i}"], capture_output=True)
        n = len(starts)
        figures["density"] = {"n": n, "first_ms": starts[0], "last_ms": starts[-1],
                              "mgr_kib_per_container": (mgr_rss1 - mgr_rss0) / max(n, 1),
                              "fs_kib_per_container": (fs_rss1 - fs_rss0) / max(n, 1)}
        rows += ["", f"## Density: {n} busybox system containers started one after another", "",
                 "| first start ms | last start ms | sysbox-mgr RSS per container | sysbox-fs RSS per container |",
                 "|---|---|---|---|",
                 f"| {starts[0]:.0f} | {starts[-1]:.0f} | {(mgr_rss1 - mgr_rss0) / max(n, 1):.0f} KiB "
                 f"({mgr_rss0 // 1024} -> {mgr_rss1 // 1024} MiB) | {(fs_rss1 - fs_rss0) / max(n, 1):.0f} KiB "
                 f"({fs_rss0 // 1024} -> {fs_rss1 // 1024} MiB) |"]

        # 3. docker run --rm
        dk = DockerDaemon(os.path.join(work, "docker"), sysbox[0], sysbox[1:7])
        try:
            dk.start()
            dk.docker("import", bb["tarball"], "local/busybox")
            both = interleaved_ms({
                "runc": lambda i: ["docker", "-H", f"unix://{dk.sock}", "run", "--rm", "local/busybox", "true"],
                "sysbox-runc": lambda i: ["docker", "-H", f"unix://{dk.sock}", "run", "--rm", "--runtime=sysbox-runc",
                                          "local/busybox", "true"]}, args.reps)
            r, s = both["runc"], both["sysbox-runc"]
        finally:
            dk.stop()
        figures["docker_run_ms"] = {"runc": r[0], "sysbox-runc": s[0]}
        rows += ["", "## docker run --rm local/busybox true, median ms", "", "| runc | sysbox-runc | ratio |",
                 "|---|---|---|", f"| {fmt(r[0], r[1])} | {fmt(s[0], s[1])} | {ratio(s[0], r[0])} |"]
    finally:
        stack.stop()  # also detaches the boot test's overlay, under the scratch dir
    head = [f"# sysbox-runc next to runc ({time.strftime('%Y-%m-%d')}, kernel {os.uname().release}, "
            f"{os.cpu_count()} CPUs, {args.reps} repetitions)", ""]
    report = "\n".join(head + rows) + "\n"
    os.makedirs(os.path.join(HERE, "results"), exist_ok=True)
    with open(os.path.join(HERE, "results", "lifecycle.md"), "w") as f:
        f.write(report)
    with open(os.path.join(HERE, "results", "lifecycle.json"), "w") as f:
        json.dump(figures, f, indent=1)
    print(report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
