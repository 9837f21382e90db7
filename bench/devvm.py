"""Dev VMs: time to the first shell and disk per VM, the 1st and the Nth VM of one image.

In one run, side by side, for the debian-systemd image (systemd, sshd, dockerd inside):
- `sysbox run` then `sysbox exec NAME true` (the image imported and unpacked once, a
  copy-on-write layer per VM);
- `docker run -d --runtime=sysbox-runc` then `docker exec NAME true` (overlay2; the image
  loaded once beforehand, its load time reported apart);
- LXC, where installed: `lxc-copy -s -B overlay` of a base container, `lxc-start`, then
  `lxc-attach -- true` (privileged here: LXC's unprivileged mode needs a subuid setup for the
  user, so it does less than the two above: no user namespace, no idmapping).
VMs stay up while the next ones start, as on a laptop; each has finished booting (systemd
reports running or degraded, at most 90 s) before the next is started, so the Nth VM's time is
its own and not the CPU the N-1 before it still spend booting (dockerd starts in each).  Disk per VM is what the VM's own
directories take (`du -x`: its running rootfs mount not counted) right after its first shell,
before it writes anything of its own.  Writes bench/results/devvm.md and devvm.json.

With --busy, each VM is started as soon as the one before gave its first shell (the earlier
ones still booting: a burst), written to devvm-busy.md.

Usage: python bench/devvm.py [--count N] [--busy]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))

from bench.stack import VENV_BIN, Stack  # noqa: E402
from integration.cleanup import remove_tree  # noqa: E402
from integration.dockerd import DockerDaemon  # noqa: E402
from sysbox import images  # noqa: E402

SYSBOX = os.path.join(VENV_BIN, "sysbox")


def timed(argv: list[str], timeout: float = 600) -> float:
    t0 = time.perf_counter()
    out = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=timeout)
    elapsed = time.perf_counter() - t0
    if out.returncode != 0:
        raise RuntimeError(f"{' '.join(argv[:6])}...: {(out.stderr.strip().splitlines() or ['failed'])[-1]}")
    return elapsed


def kib(*paths: str) -> int:
    out = subprocess.run(["du", "-sxk", "-c", *paths], capture_output=True, text=True, check=True).stdout
    return int(out.strip().splitlines()[-1].split()[0])


SETTLE = True


def settle(argv: list[str]) -> None:
    """Wait (bounded) until systemd inside says the boot is over."""
    if not SETTLE:
        return
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        out = subprocess.run(argv + ["systemctl", "is-system-running"], capture_output=True, text=True, timeout=60)
        if out.stdout.strip() in ("running", "degraded"):
            return
        time.sleep(0.5)


def bench_sysbox(archive: str, count: int) -> dict:
    st = Stack("devvm")
    netns = f"sbxbv{os.getpid()}"
    store, run_root = os.path.join(st.work, "store"), f"/run/sbx-bench-devvm-{os.getpid()}"
    opts = ["--store", store, "--run-root", run_root, "--mgr-socket", st.mgr.socket, "--fs-socket", st.fs.socket,
            "--sysbox-state", st.state, "--bridge", "sbxbv0", "--subnet", "10.79.0.0/24"]
    subprocess.run(["ip", "netns", "add", netns], check=True)
    subprocess.run(["ip", "-n", netns, "link", "set", "lo", "up"], check=True)

    def sb(*args: str) -> list[str]:
        return ["nsenter", f"--net=/run/netns/{netns}", SYSBOX, args[0], *opts, *args[1:]]

    runs, execs, disks = [], [], []
    try:
        for i in range(count):
            runs.append(timed(sb("run", "--name", f"vm{i}", archive)))
            execs.append(timed(sb("exec", f"vm{i}", "true")))
            disks.append(kib(os.path.join(store, "containers", f"vm{i}")))
            settle(sb("exec", f"vm{i}"))
        image_kib = kib(os.path.join(store, "images"))
    finally:
        for i in range(count):
            subprocess.run(sb("rm", "-f", f"vm{i}"), capture_output=True, timeout=120)
        subprocess.run(["ip", "netns", "del", netns], capture_output=True)
        st.stop()
        remove_tree(run_root)
    return {"run": runs, "exec": execs, "disk_kib": disks, "image_kib": image_kib}


def bench_docker(archive: str, count: int, runtime: list[str]) -> dict:
    work = os.path.join("/var/tmp", f"sysbox-bench-devvm-docker-{os.getpid()}")
    st = Stack("devvm-dk")
    dk = DockerDaemon(work, runtime[0], st.runtime[1:7])
    runs, execs, disks = [], [], []
    try:
        dk.start()
        t0 = time.perf_counter()
        dk.docker("load", "-i", archive, timeout=600)
        load = time.perf_counter() - t0
        docker = ["docker", "-H", f"unix://{dk.sock}"]
        for i in range(count):
            runs.append(timed(docker + ["run", "-d", "--runtime=sysbox-runc", "--name", f"d{i}",
                                        "local/debian-systemd:latest"]))
            execs.append(timed(docker + ["exec", f"d{i}", "true"]))
            data = json.loads(dk.docker("inspect", f"d{i}").stdout)[0]["GraphDriver"]["Data"]
            init = data["LowerDir"].split(":")[0]
            disks.append(kib(os.path.dirname(data["UpperDir"]), os.path.dirname(init)))
            settle(docker + ["exec", f"d{i}"])
        image_kib = kib(os.path.join(work, "docker", "overlay2")) - sum(disks)
    finally:
        dk.stop()
        st.stop()
        remove_tree(work)
    return {"run": runs, "exec": execs, "disk_kib": disks, "image_kib": image_kib, "load": load}


LXC_CONFIG = """lxc.include = /usr/share/lxc/config/common.conf
lxc.uts.name = base
lxc.rootfs.path = dir:{rootfs}
lxc.net.0.type = empty
lxc.apparmor.profile = unconfined
lxc.mount.auto = proc:mixed sys:mixed cgroup:mixed
lxc.init.cmd = /sbin/init
"""


def bench_lxc(rootfs: str, count: int) -> dict | None:
    if not shutil.which("lxc-copy") or not os.path.exists("/usr/share/lxc/config/common.conf"):
        return None
    path = os.path.join("/var/tmp", f"sysbox-bench-devvm-lxc-{os.getpid()}")
    base = os.path.join(path, "base")
    os.makedirs(base)
    runs, execs, disks = [], [], []
    started = []
    try:
        t0 = time.perf_counter()
        subprocess.run(["cp", "-a", rootfs, os.path.join(base, "rootfs")], check=True)
        prepare = time.perf_counter() - t0
        with open(os.path.join(base, "config"), "w") as f:
            f.write(LXC_CONFIG.format(rootfs=os.path.join(base, "rootfs")))
        for i in range(count):
            t0 = time.perf_counter()
            subprocess.run(["lxc-copy", "-P", path, "-n", "base", "-N", f"c{i}", "-s", "-B", "overlay"], check=True,
                           capture_output=True, timeout=120)
            subprocess.run(["lxc-start", "-P", path, "-n", f"c{i}"], check=True, capture_output=True, timeout=120)
            started.append(f"c{i}")
            runs.append(time.perf_counter() - t0)
            execs.append(timed(["lxc-attach", "-P", path, "-n", f"c{i}", "--", "true"]))
            disks.append(kib(os.path.join(path, f"c{i}")))
            settle(["lxc-attach", "-P", path, "-n", f"c{i}", "--"])
    finally:
        for name in started:
            subprocess.run(["lxc-stop", "-P", path, "-n", name, "-k"], capture_output=True, timeout=60)
        for i in range(count):
            subprocess.run(["lxc-destroy", "-P", path, "-n", f"c{i}"], capture_output=True, timeout=60)
        remove_tree(path)
    return {"run": runs, "exec": execs, "disk_kib": disks, "prepare": prepare}


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--count", type=int, default=10)
    ap.add_argument("--busy", action="store_true", help="do not wait for each boot to end")
    args = ap.parse_args()
    global SETTLE
    SETTLE = not args.busy
    meta = images.build("debian-systemd")
    archive, rootfs = meta["docker_archive"], meta["rootfs"]
    n = args.count
    results = {"sysbox run": bench_sysbox(archive, n),
               "docker --runtime=sysbox-runc": bench_docker(archive, n, [os.path.join(VENV_BIN, "sysbox-runc")])}
    lxc = bench_lxc(rootfs, n)
    if lxc:
        results["lxc-copy -s (privileged)"] = lxc
    rows = [f"# Dev VMs: time to the first shell and disk per VM ({n} VMs of debian-systemd, kept running, "
            + ("started in a burst, the earlier ones still booting)" if args.busy else "each booted before the next)"), "",
            f"Measured {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, all in one run.  First shell = "
            "start command + `exec true` wall time.", "",
            f"| | 1st VM, s | {n}th VM, s | median of 2nd..{n}th, s | disk of {n}th VM, KiB | image once, MiB |",
            "|---|---|---|---|---|---|"]
    for name, r in results.items():
        total = [a + b for a, b in zip(r["run"], r["exec"])]
        once = r.get("image_kib")
        rows.append(f"| {name} | {total[0]:.2f} | {total[-1]:.2f} | {statistics.median(total[1:]):.2f} | "
                    f"{r['disk_kib'][-1]} | {once / 1024:.0f} |" if once is not None else
                    f"| {name} | {total[0]:.2f} | {total[-1]:.2f} | {statistics.median(total[1:]):.2f} | "
                    f"{r['disk_kib'][-1]} | - |")
    sb = results["sysbox run"]
    sb_total = [a + b for a, b in zip(sb["run"], sb["exec"])]
    dk = results["docker --runtime=sysbox-runc"]
    dk_total = [a + b for a, b in zip(dk["run"], dk["exec"])]
    rows += ["", f"- Ratio, {n}th VM's first shell, sysbox run / docker: {sb_total[-1] / dk_total[-1]:.2f}"]
    if lxc:
        lx_total = [a + b for a, b in zip(lxc["run"], lxc["exec"])]
        rows.append(f"- Ratio, {n}th VM's first shell, sysbox run / lxc-copy: {sb_total[-1] / lx_total[-1]:.2f}")
    rows += [f"- Target: the {n}th VM under 1.5 s and 10 MiB: {sb_total[-1]:.2f} s, "
             f"{sb['disk_kib'][-1] / 1024:.2f} MiB -> {'met' if sb_total[-1] < 1.5 and sb['disk_kib'][-1] < 10240 else 'MISSED'}",
             f"- The 1st `sysbox run` includes importing and unpacking the image; docker's `load` took "
             f"{dk['load']:.1f} s before its 1st run" + (f"; LXC's base rootfs copy took {lxc['prepare']:.1f} s"
                                                         if lxc else "") + ".",
             "- sysbox run splits as: " + ", ".join(f"run {r:.2f} + exec {e:.2f}" for r, e in
                                                   list(zip(sb["run"], sb["exec"]))[-3:]) + " (last three)."]
    os.makedirs(os.path.join(HERE, "results"), exist_ok=True)
    name = "devvm-busy" if args.busy else "devvm"
    with open(os.path.join(HERE, "results", f"{name}.md"), "w") as f:
        f.write("\n".join(rows) + "\n")
    with open(os.path.join(HERE, "results", f"{name}.json"), "w") as f:
        json.dump(results, f, indent=1)
    print("\n".join(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
