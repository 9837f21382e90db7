"""/proc/diskstats with the container's own I/O per device, from its blkio/io cgroup."""

from __future__ import annotations

from sysbox.fs.container import Container
from sysbox.fs.nodes import File, host_read


class Diskstats(File):
    def read(self, c: Container) -> bytes:
        io = c.cgroups.io()
        lines = []
        for line in host_read("/proc/diskstats").decode().splitlines():
            f = line.split()
            s = io.get(f"{f[0]}:{f[1]}")
            if s is None:
                continue
            rios, wios = s.get("rios", 0), s.get("wios", 0)
            rsec, wsec = s.get("rbytes", 0) // 512, s.get("wbytes", 0) // 512
            lines.append(f"{f[0]:>4} {f[1]:>7} {f[2]} {rios} 0 {rsec} 0 {wios} 0 {wsec} 0 0 0 0 0 0 0 0 0 0")
        return ("\n".join(lines) + ("\n" if lines else "")).encode()
