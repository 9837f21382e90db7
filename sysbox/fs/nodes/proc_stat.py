"""/proc/stat with cpu lines for the container's CPUs from its cpuacct usage, and its boot time."""

from __future__ import annotations

import os
import time

from sysbox.fs.container import Container
from sysbox.fs.nodes import File, host_read
from sysbox.fs.nodes.sys_cpu_online import online_cpus

HZ = os.sysconf("SC_CLK_TCK")


class Stat(File):
    def read(self, c: Container) -> bytes:
        allowed = c.cgroups.cpus(online_cpus())
        usage = c.cgroups.cpu_usage()
        up_ticks = int(c.uptime() * HZ)
        rows = []
        for i, cpu in enumerate(allowed):
            u, s = usage.get(cpu, (0, 0))
            if -1 in usage:  # v2 reports totals only: spread them evenly
                u, s = usage[-1][0] // len(allowed), usage[-1][1] // len(allowed)
            ut, st = u * HZ // 10**9, s * HZ // 10**9
            rows.append((i, ut, st, max(0, up_ticks - ut - st)))
        total = [sum(r[k] for r in rows) for k in (1, 2, 3)]
        lines = [f"cpu  {total[0]} 0 {total[1]} {total[2]} 0 0 0 0 0 0"]
        lines += [f"cpu{i} {ut} 0 {st} {idle} 0 0 0 0 0 0" for i, ut, st, idle in rows]
        btime = int(time.time() - c.uptime())
        for line in host_read("/proc/stat").decode().splitlines():
            if line.startswith("cpu"):
                continue
            lines.append(f"btime {btime}" if line.startswith("btime") else line)
        return ("\n".join(lines) + "\n").encode()
