"""How long a reader inside a container waits while sysbox-fs is SIGKILLed and restarted.

Starts its own sysbox-mgr and sysbox-fs (with its fd holder), boots one busybox container
whose init reads /proc/uptime in a tight loop and counts, and samples that count from the
host every 2 ms.  Each round SIGKILLs sysbox-fs and starts it again at once; the longest gap
between two counts in a round is the stall a reader saw.  Writes bench/results/restart.md.

Usage: python bench/restart.py [--rounds N]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))

from bench.stack import Stack
from sysbox import images
from sysbox.oci.bundle import write_bundle

LOOP = ("i=0; f=0; while true; do i=$((i+1)); read u < /proc/uptime || f=$((f+1)); "
        "echo \"$i $f\" > /tmp/count; done")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=10)
    args = ap.parse_args()
    stack = Stack("restart")
    rounds: list[tuple[float, float]] = []
    try:
        bundle = os.path.join(stack.work, "bundle")
        write_bundle(bundle, images.build("busybox")["rootfs"], ["sh", "-c", LOOP], readonly=False)
        subprocess.run(stack.runtime + ["run", "-d", "--bundle", bundle, "reader"], check=True,
                       stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
        pid = json.loads(subprocess.run(stack.runtime + ["state", "reader"], capture_output=True,
                                        check=True).stdout)["pid"]
        path = f"/proc/{pid}/root/tmp/count"
        state: dict = {"last": "", "at": time.monotonic(), "worst": 0.0}
        stop = threading.Event()

        def watch() -> None:
            while not stop.is_set():
                try:
                    with open(path) as f:
                        value = f.read()
                except OSError:
                    value = state["last"]
                now = time.monotonic()
                if value != state["last"]:
                    state["worst"] = max(state["worst"], now - state["at"])
                    state["last"], state["at"] = value, now
                time.sleep(0.002)

        watcher = threading.Thread(target=watch)
        watcher.start()
        try:
            time.sleep(1)
            for _ in range(args.rounds):
                time.sleep(0.5)
                state["worst"] = 0.0
                t0 = time.monotonic()
                stack.fs.kill()
                stack.fs.start()
                ready = time.monotonic() - t0
                time.sleep(1.0)
                rounds.append((state["worst"], ready))
        finally:
            stop.set()
            watcher.join(10)
        failed = int(state["last"].split()[1]) if state["last"] else -1
    finally:
        stack.stop()
    stalls = [s for s, _ in rounds]
    lines = [f"# A reader's stall while sysbox-fs restarts ({time.strftime('%Y-%m-%d')}, kernel "
             f"{os.uname().release})", "",
             f"{args.rounds} rounds of SIGKILL then an immediate restart, one container reading /proc/uptime "
             f"in a loop ({state['last'].split()[0]} reads); failed reads: {failed}.", "",
             "| round | longest stall of the reader (s) | kill to answering (s) |", "|---|---|---|"]
    lines += [f"| {i + 1} | {s:.3f} | {r:.3f} |" for i, (s, r) in enumerate(rounds)]
    lines += ["", f"Longest stall {max(stalls):.3f} s, median {statistics.median(stalls):.3f} s."]
    report = "\n".join(lines) + "\n"
    os.makedirs(os.path.join(HERE, "results"), exist_ok=True)
    with open(os.path.join(HERE, "results", "restart.md"), "w") as f:
        f.write(report)
    print(report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
