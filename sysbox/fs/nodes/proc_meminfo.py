"""/proc/meminfo from the container's memory cgroup: `free` shows the container's limit."""

from __future__ import annotations

from sysbox.fs.cgroupview import UNLIMITED
from sysbox.fs.container import Container
from sysbox.fs.nodes import File, host_read


def host_meminfo() -> list[tuple[str, int, str]]:
    out = []
    for line in host_read("/proc/meminfo").decode().splitlines():
        key, _, rest = line.partition(":")
        parts = rest.split()
        out.append((key, int(parts[0]), parts[1] if len(parts) > 1 else ""))
    return out


class Meminfo(File):
    def read(self, c: Container) -> bytes:
        host = host_meminfo()
        hv = {k: v for k, v, _ in host}
        m = c.cgroups.memory()
        kib = {}
        if m:
            total = min(m["limit"], hv["MemTotal"] * 1024) // 1024
            used = min(m["usage"] // 1024, total)
            cache = min(m["cache"] // 1024, used)
            free = total - used
            swap_total = 0 if m["swap_limit"] >= UNLIMITED else m["swap_limit"] // 1024
            swap_total = min(swap_total, hv.get("SwapTotal", 0))
            kib = {"MemTotal": total, "MemFree": free, "MemAvailable": min(total, free + cache),
                   "Buffers": 0, "Cached": cache, "SwapCached": 0,
                   "Active": (m["active_anon"] + m["active_file"]) // 1024,
                   "Inactive": (m["inactive_anon"] + m["inactive_file"]) // 1024,
                   "Active(anon)": m["active_anon"] // 1024, "Inactive(anon)": m["inactive_anon"] // 1024,
                   "Active(file)": m["active_file"] // 1024, "Inactive(file)": m["inactive_file"] // 1024,
                   "Shmem": m["shmem"] // 1024,
                   "SwapTotal": swap_total, "SwapFree": max(0, swap_total - m["swap_usage"] // 1024)}
        lines = [f"{k + ':':<16}{kib.get(k, v):>8}{' ' + unit if unit else ''}" for k, v, unit in host]
        return ("\n".join(lines) + "\n").encode()
