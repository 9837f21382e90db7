"""/proc/loadavg of the container: exponentially damped counts of its runnable tasks.

A sampler (sysbox.fs.daemon) calls sample() every INTERVAL seconds, as the kernel does for
the host every 5 s; read() only formats.
"""

from __future__ import annotations

import math
import os

from sysbox.fs.container import Container
from sysbox.fs.nodes import File, host_read
from sysbox.linux.proc import task_state

INTERVAL = 5.0
MAX_TASKS = 20000  # tasks counted per container and sample: the work has a bound
DECAY = [math.exp(-INTERVAL / 60), math.exp(-INTERVAL / 300), math.exp(-INTERVAL / 900)]


def sample(c: Container) -> None:
    running = total = 0
    for d in c.cgroups.task_dirs():
        try:
            with open(os.path.join(d, "tasks" if os.path.exists(os.path.join(d, "tasks")) else "cgroup.threads")) as f:
                tids = f.read().split()
        except OSError:
            continue
        for tid in tids[:max(0, MAX_TASKS - total)]:
            total += 1
            if task_state(tid) in ("R", "D"):
                running += 1
    c.load = [load * e + running * (1 - e) for load, e in zip(c.load, DECAY, strict=True)]
    c.load_tasks = (running, total)


class Loadavg(File):
    def read(self, c: Container) -> bytes:
        last_pid = host_read("/proc/loadavg").split()[-1].decode()
        a, b, d = c.load
        return f"{a:.2f} {b:.2f} {d:.2f} {c.load_tasks[0]}/{c.load_tasks[1]} {last_pid}\n".encode()
