"""A container's resource limits and usage, read from its cgroups (v1, v2 or hybrid).

These feed the lxcfs-style views (meminfo, cpuinfo, stat, loadavg, diskstats, cpu/online) so
that free, top and uptime inside a container report the container, not the host.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field

from sysbox.linux import cgroups

UNLIMITED = 1 << 62


def _parse_int(text: str | None) -> int | None:
    if text is None:
        return None
    text = text.strip()
    if text == "max":
        return UNLIMITED
    try:
        return int(text)
    except ValueError:
        return None


def _kv(text: str | None) -> dict[str, int]:
    """`key value` lines (memory.stat, cpu.stat); lines of another shape are skipped."""
    tokens = (text or "").split()
    if len(tokens) == 2 * (text or "").count("\n"):  # the usual shape: pairs, read in C
        try:
            return dict(zip(tokens[::2], map(int, tokens[1::2]), strict=True))
        except ValueError:
            pass
    out = {}
    for line in (text or "").splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[1].lstrip("-").isdigit():
            out[parts[0]] = int(parts[1])
    return out


def parse_cpus(spec: str) -> list[int]:
    cpus: list[int] = []
    for part in spec.strip().split(","):
        if not part:
            continue
        lo, _, hi = part.partition("-")
        cpus.extend(range(int(lo), int(hi or lo) + 1))
    return cpus


def format_cpus(cpus: list[int]) -> str:
    out, start = [], None
    for i, c in enumerate(cpus):
        if start is None:
            start = c
        if i + 1 == len(cpus) or cpus[i + 1] != c + 1:
            out.append(f"{start}" if start == c else f"{start}-{c}")
            start = None
    return ",".join(out)


MISSING_TTL = 5.0  # seconds an absent cgroup file is taken as absent before looking again
CPUS_TTL = 1.0  # seconds a container's CPU set (cpuset cut to quota) is reused between reads
MAX_TASK_DIRS = 2048  # cgroups sampled for loadavg per container and interval


@dataclass
class CgroupView:
    dirs: dict[str, str]  # controller (or "unified") -> host directory
    _cpus: tuple[float, tuple[int, ...], list[int]] | None = None  # (when, online, result)
    # Cgroup files stay open and are re-read with pread at offset 0 (seq_file regenerates them):
    # open+close of a kernfs file is most of the cost of reading one, and meminfo reads six.
    _fds: dict[str, int] = field(default_factory=dict)
    _missing: dict[str, float] = field(default_factory=dict)  # path -> when it was found absent

    def _read(self, path: str) -> str | None:
        """The file's current content, or None if the file is absent or unreadable."""
        fd = self._fds.get(path)
        if fd is None:
            now = time.monotonic()
            if now - self._missing.get(path, -MISSING_TTL) < MISSING_TTL:
                return None
            try:
                fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
            except OSError:
                # looked for again later: a v2 controller file appears once the parent enables it
                self._missing[path] = now
                return None
            self._fds[path] = fd
        try:
            chunks, off = [], 0
            while chunk := os.pread(fd, 65536, off):
                chunks.append(chunk)
                off += len(chunk)
        except OSError:  # cgroup removed: drop the fd, answer as for an absent file
            self._fds.pop(path, None)
            os.close(fd)
            return None
        return b"".join(chunks).decode(errors="replace")

    def _int(self, path: str) -> int | None:
        return _parse_int(self._read(path))

    def close(self) -> None:
        """Close the cached cgroup file descriptors (the container is gone)."""
        for fd in self._fds.values():
            os.close(fd)
        self._fds.clear()

    @classmethod
    def of(cls, pid: int) -> CgroupView:
        dirs: dict[str, str] = {}
        for controllers, _path, d in cgroups.process_cgroups(pid):
            for c in (controllers or {"unified"}):
                dirs.setdefault(c, d)
        return cls(dirs)

    def _v2(self, name: str) -> str | None:
        d = self.dirs.get("unified")
        if not d:
            return None
        path = os.path.join(d, name)
        return path if path in self._fds or os.path.exists(path) else None

    # -- memory --------------------------------------------------------------------------------
    def memory(self) -> dict[str, int]:
        """limit, usage, cache, swap_limit, swap_usage (bytes); limits may be UNLIMITED."""
        d = self.dirs.get("memory")
        if d:
            stat = _kv(self._read(os.path.join(d, "memory.stat")))
            limit = self._int(os.path.join(d, "memory.limit_in_bytes")) or UNLIMITED
            usage = self._int(os.path.join(d, "memory.usage_in_bytes")) or 0
            memsw_limit = self._int(os.path.join(d, "memory.memsw.limit_in_bytes"))
            memsw_usage = self._int(os.path.join(d, "memory.memsw.usage_in_bytes"))
            return {"limit": limit, "usage": usage, "cache": stat.get("total_cache", 0),
                    "active_file": stat.get("total_active_file", 0),
                    "inactive_file": stat.get("total_inactive_file", 0),
                    "active_anon": stat.get("total_active_anon", 0),
                    "inactive_anon": stat.get("total_inactive_anon", 0),
                    "shmem": stat.get("total_shmem", 0),
                    "slab_reclaimable": 0, "slab_unreclaimable": 0,  # v1 does not account them apart
                    "swap_limit": (memsw_limit - limit) if memsw_limit and memsw_limit < UNLIMITED else UNLIMITED,
                    "swap_usage": max(0, (memsw_usage or usage) - usage)}
        p = self._v2("memory.current")
        if p:
            d2 = os.path.dirname(p)
            stat = _kv(self._read(os.path.join(d2, "memory.stat")))
            return {"limit": self._int(os.path.join(d2, "memory.max")) or UNLIMITED, "usage": self._int(p) or 0,
                    "cache": stat.get("file", 0), "active_file": stat.get("active_file", 0),
                    "inactive_file": stat.get("inactive_file", 0), "active_anon": stat.get("active_anon", 0),
                    "inactive_anon": stat.get("inactive_anon", 0), "shmem": stat.get("shmem", 0),
                    "slab_reclaimable": stat.get("slab_reclaimable", 0),
                    "slab_unreclaimable": stat.get("slab_unreclaimable", 0),
                    "swap_limit": self._int(os.path.join(d2, "memory.swap.max")) or UNLIMITED,
                    "swap_usage": self._int(os.path.join(d2, "memory.swap.current")) or 0}
        return {}

    def pressure(self, kind: str) -> str | None:
        """The container's <kind>.pressure (PSI, cgroup v2 only), or None."""
        p = self._v2(f"{kind}.pressure")
        return self._read(p) if p else None

    # -- cpu -----------------------------------------------------------------------------------
    def cpus(self, online: list[int]) -> list[int]:
        """The CPUs the container may use: its cpuset, cut to its CFS quota (as lxcfs -u).

        Reused for CPUS_TTL: uptime, stat, cpuinfo and cpu/online all need it, tools read them
        in bursts, and it costs four cgroup file reads; a `docker update` shows within a second."""
        now, key = time.monotonic(), tuple(online)
        if self._cpus and self._cpus[1] == key and now - self._cpus[0] < CPUS_TTL:
            return list(self._cpus[2])
        result = self._cpus_now(online)
        self._cpus = (now, key, result)
        return list(result)

    def _cpus_now(self, online: list[int]) -> list[int]:
        d = self.dirs.get("cpuset")
        text = None
        if d:
            text = self._read(os.path.join(d, "cpuset.effective_cpus")) or self._read(os.path.join(d, "cpuset.cpus"))
        elif self._v2("cpuset.cpus.effective"):
            text = self._read(self._v2("cpuset.cpus.effective") or "")
        allowed = [c for c in parse_cpus(text) if c in online] if text and text.strip() else list(online)
        quota = self.quota()
        if quota is not None:
            allowed = allowed[: max(1, -(-quota[0] // quota[1]))]
        return allowed or list(online)

    def quota(self) -> tuple[int, int] | None:
        d = self.dirs.get("cpu")
        if d:
            q, p = self._int(os.path.join(d, "cpu.cfs_quota_us")), self._int(os.path.join(d, "cpu.cfs_period_us"))
            return (q, p) if q and q > 0 and p else None
        p2 = self._v2("cpu.max")
        if p2:
            parts = (self._read(p2) or "").split()
            if len(parts) == 2 and parts[0] != "max":
                return int(parts[0]), int(parts[1])
        return None

    def cpu_usage(self) -> dict[int, tuple[int, int]]:
        """Per-CPU (user, system) nanoseconds, where the cgroup reports them per CPU."""
        d = self.dirs.get("cpuacct")
        out: dict[int, tuple[int, int]] = {}
        if d:
            for line in (self._read(os.path.join(d, "cpuacct.usage_all")) or "").splitlines()[1:]:
                parts = line.split()
                if len(parts) == 3:
                    out[int(parts[0])] = (int(parts[1]), int(parts[2]))
        elif self._v2("cpu.stat"):
            stat = _kv(self._read(self._v2("cpu.stat") or ""))
            out[-1] = (stat.get("user_usec", 0) * 1000, stat.get("system_usec", 0) * 1000)
        return out

    # -- tasks (loadavg) -------------------------------------------------------------------------
    def task_dirs(self, limit: int = MAX_TASK_DIRS) -> list[str]:
        """The container's cgroup and its descendants, breadth first, at most `limit` of them.
        The container creates the tree: an iterative walk with a bound, so no depth or width
        it builds can exhaust the stack or hold the sampler (a deeper tree is sampled in part)."""
        d = self.dirs.get("pids") or self.dirs.get("cpu") or self.dirs.get("unified")
        if not d:
            return []
        out: list[str] = []
        queue = [d]
        while queue and len(out) < limit:
            cur = queue.pop(0)
            out.append(cur)
            try:
                with os.scandir(cur) as it:
                    queue.extend(e.path for e in it if e.is_dir(follow_symlinks=False))
            except OSError:
                continue
            del queue[limit:]
        return out

    def io(self) -> dict[str, dict[str, int]]:
        """Per device 'maj:min': rios, wios, rbytes, wbytes."""
        out: dict[str, dict[str, int]] = {}
        d = self.dirs.get("blkio")
        if d:
            for fname, kind in (("blkio.throttle.io_serviced", "ios"), ("blkio.throttle.io_service_bytes", "bytes")):
                for line in (self._read(os.path.join(d, fname)) or "").splitlines():
                    parts = line.split()
                    if len(parts) == 3 and parts[1] in ("Read", "Write"):
                        key = ("r" if parts[1] == "Read" else "w") + kind
                        out.setdefault(parts[0], {})[key] = int(parts[2])
        elif self._v2("io.stat"):
            for line in (self._read(self._v2("io.stat") or "") or "").splitlines():
                parts = line.split()
                if parts:
                    out[parts[0]] = {k: int(v) for k, v in (p.split("=") for p in parts[1:]) if v.isdigit()}
        return out
