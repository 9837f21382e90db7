"""Pure transforms from `sysbox run`'s options to the VM's runtime spec, and the parsing of
those options: each bad value becomes one line naming its flag."""

from __future__ import annotations

import copy
import os
import re
from typing import Any

from sysbox.errors import SysboxError

HOSTNAME = re.compile(r"(?=.{1,63}$)[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?")
ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_UNITS = {"": 1, "b": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}
CPU_PERIOD = 100_000
MIN_MEMORY = 6 << 20  # Docker's floor: below it not even a shell starts
RESTART = ("no", "always")


def parse_memory(value: str) -> int:
    m = re.fullmatch(r"(\d+)([bkmgt]?)b?", value.strip().lower())
    if not m:
        raise SysboxError(f"--memory {value}: expected a size such as 512m or 2g")
    n = int(m.group(1)) * _UNITS[m.group(2)]
    if n < MIN_MEMORY:
        raise SysboxError(f"--memory {value}: the minimum is 6m")
    return n


def parse_cpus(value: str) -> float:
    try:
        n = float(value)
    except ValueError:
        n = -1
    if not (0.01 <= n <= (os.cpu_count() or 1)):
        raise SysboxError(f"--cpus {value}: expected a number from 0.01 to {os.cpu_count() or 1} (this host's CPUs)")
    return n


def parse_cpuset(value: str, online: int | None = None) -> str:
    """--cpuset-cpus 0-1,3: which CPUs the VM may run on (what nproc counts)."""
    online = online or os.cpu_count() or 1
    cpus: set[int] = set()
    for part in value.split(","):
        m = re.fullmatch(r"(\d+)(?:-(\d+))?", part.strip())
        if not m or int(m.group(2) or m.group(1)) < int(m.group(1)):
            raise SysboxError(f"--cpuset-cpus {value}: expected CPU numbers and ranges such as 0-1,3")
        cpus.update(range(int(m.group(1)), int(m.group(2) or m.group(1)) + 1))
    if max(cpus) >= online:
        raise SysboxError(f"--cpuset-cpus {value}: this host has CPUs 0-{online - 1}")
    return value


def parse_pids(value: str) -> int:
    if not value.isdigit() or int(value) < 1:
        raise SysboxError(f"--pids-limit {value}: expected a positive number")
    return int(value)


def parse_env(values: list[str], host_env: dict[str, str]) -> list[str]:
    """-e NAME=VALUE, or -e NAME to pass the host's value (dropped when the host has none)."""
    out = []
    for v in values:
        name, eq, val = v.partition("=")
        if not ENV_NAME.fullmatch(name):
            raise SysboxError(f"-e {v}: expected NAME=VALUE or NAME (letters, digits, '_')")
        if eq:
            out.append(f"{name}={val}")
        elif name in host_env:
            out.append(f"{name}={host_env[name]}")
    return out


def parse_hostname(value: str) -> str:
    if not HOSTNAME.fullmatch(value):
        raise SysboxError(f"--hostname {value!r}: letters, digits and '-' (up to 63), "
                          "not starting or ending with '-'")
    return value


def parse_restart(value: str) -> str:
    if value not in RESTART:
        raise SysboxError(f"--restart {value}: expected one of {', '.join(RESTART)}")
    return value


def _merge_env(env: list[str], extra: list[str]) -> list[str]:
    names = {e.partition("=")[0] for e in extra}
    return [e for e in env if e.partition("=")[0] not in names] + extra


def apply(spec: dict[str, Any], meta: dict[str, Any]) -> dict[str, Any]:
    """The VM's spec: the image's, with the command, hostname, environment, limits, binds and a
    network namespace of its own (attached by CNI between create and start)."""
    spec = copy.deepcopy(spec)
    proc = spec.setdefault("process", {})
    proc["terminal"] = False
    if meta.get("cmd"):
        proc["args"] = list(meta["cmd"])
    if not proc.get("args"):
        raise SysboxError(f"image {meta['image']}: no command in the image; give one after the image name")
    proc["env"] = _merge_env(proc.get("env") or [], list(meta.get("env") or []))
    spec["hostname"] = meta.get("hostname") or meta["name"]
    linux = spec.setdefault("linux", {})
    spaces = [n for n in linux.get("namespaces", []) if n.get("type") != "network"]
    linux["namespaces"] = spaces + [{"type": "network"}]
    res = linux.setdefault("resources", {})
    if meta.get("memory"):
        res["memory"] = {**res.get("memory", {}), "limit": int(meta["memory"])}
    if meta.get("cpus"):
        res["cpu"] = {**res.get("cpu", {}), "quota": round(float(meta["cpus"]) * CPU_PERIOD),
                      "period": CPU_PERIOD}
    if meta.get("cpuset"):
        res["cpu"] = {**res.get("cpu", {}), "cpus": meta["cpuset"]}
    if meta.get("pids"):
        res["pids"] = {"limit": int(meta["pids"])}
    if not res:
        linux.pop("resources")
    for v in meta.get("volumes") or []:
        opts = ["rbind", "ro" if v["readonly"] else "rw"]
        spec.setdefault("mounts", []).append({"destination": v["destination"], "type": "bind",
                                              "source": v["source"], "options": opts})
    return spec


def is_systemd(spec: dict[str, Any]) -> bool:
    """Whether the VM's init is systemd: its journal, not its console, is what `logs` shows."""
    args = (spec.get("process") or {}).get("args") or []
    return bool(args) and os.path.basename(args[0]) in ("init", "systemd")


def hosts_file(hostname: str) -> bytes:
    return f"127.0.0.1\tlocalhost\n127.0.1.1\t{hostname}\n::1\tlocalhost ip6-localhost ip6-loopback\n".encode()
