"""/proc/meminfo from the container's memory cgroup: `free` shows the container's limit."""

from __future__ import annotations

from sysbox.fs.cgroupview import UNLIMITED
from sysbox.fs.container import Container
from sysbox.fs.nodes import File, shared_host

HOST_TTL = 0.1  # seconds the host's meminfo is shared between the containers' reads


def _parse(raw: bytes) -> tuple[list[tuple[str, int, str]], list[str]]:
    """(key, value, unit) per line, and the lines as they are."""
    fields, lines = [], raw.decode().splitlines()
    for line in lines:
        key, _, rest = line.partition(":")
        parts = rest.split()
        fields.append((key, int(parts[0]), parts[1] if len(parts) > 1 else ""))
    return fields, lines


def _host() -> tuple[list[tuple[str, int, str]], list[str]]:
    return shared_host("/proc/meminfo", HOST_TTL, _parse)


def host_meminfo() -> list[tuple[str, int, str]]:
    return _host()[0]


class Meminfo(File):
    def read(self, c: Container) -> bytes:
        host, host_lines = _host()
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
                   # the host's slab would count as the container's cache (busybox free's buff/cache)
                   "Slab": min(used, (m["slab_reclaimable"] + m["slab_unreclaimable"]) // 1024),
                   "SReclaimable": min(cache, m["slab_reclaimable"] // 1024),
                   "SUnreclaim": min(used, m["slab_unreclaimable"] // 1024),
                   "SwapTotal": swap_total, "SwapFree": max(0, swap_total - m["swap_usage"] // 1024)}
        lines = [f"{k + ':':<16}{kib[k]:>8}{' ' + unit if unit else ''}" if k in kib else line
                 for (k, _v, unit), line in zip(host, host_lines, strict=True)]
        return ("\n".join(lines) + "\n").encode()
