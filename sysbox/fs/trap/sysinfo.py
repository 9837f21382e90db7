"""sysinfo(2) answered for the container: its memory limit and use, uptime, load and tasks.

busybox `free`, `uptime` and glibc's sysconf(_SC_PHYS_PAGES) ask the kernel directly, not
/proc/meminfo, so without this a container limited to 300 MiB sees the host's 24 GiB.  The
call is trapped (seccomp notify), the struct built here from the same figures as the
emulated /proc/meminfo and /proc/loadavg, and written into the caller's buffer.
"""

from __future__ import annotations

import struct

from sysbox.fs.cgroupview import UNLIMITED
from sysbox.fs.container import Container
from sysbox.fs.nodes.proc_meminfo import host_meminfo

# struct sysinfo on LP64: long uptime; unsigned long loads[3], totalram, freeram, sharedram,
# bufferram, totalswap, freeswap; unsigned short procs; (pad) unsigned long totalhigh,
# freehigh; unsigned int mem_unit; (pad to 112)
LAYOUT = struct.Struct("=q3Q6QH6x2QI4x")
SIZE = LAYOUT.size
LOAD_SHIFT = 16


def build(c: Container) -> bytes:
    host = {k: v * 1024 for k, v, _ in host_meminfo()}
    total, free = host.get("MemTotal", 0), host.get("MemFree", 0)
    shared, buffers = host.get("Shmem", 0), host.get("Buffers", 0)
    swap_total, swap_free = host.get("SwapTotal", 0), host.get("SwapFree", 0)
    m = c.cgroups.memory()
    if m:
        total = min(m["limit"], total)
        free = total - min(m["usage"], total)
        shared, buffers = min(m["shmem"], total), 0
        swap_total = 0 if m["swap_limit"] >= UNLIMITED else min(m["swap_limit"], swap_total)
        swap_free = max(0, swap_total - m["swap_usage"])
    loads = [min(int(x * (1 << LOAD_SHIFT)), (1 << 64) - 1) for x in c.load]
    procs = min(max(c.load_tasks[1], 1), 0xFFFF)
    return LAYOUT.pack(int(c.uptime()), *loads, total, free, shared, buffers, swap_total, swap_free, procs,
                       0, 0, 1)
