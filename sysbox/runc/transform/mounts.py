"""The mounts a system container needs: writable sysfs and cgroupfs of its own, tmpfs where
systemd expects one, host-backed special dirs, and (data-driven) sysbox-fs nodes."""

from __future__ import annotations

import posixpath

from sysbox.typing_lite import TYPE_CHECKING

if TYPE_CHECKING:
    from typing import Any

from sysbox.runc.transform import Context

SYSTEMD_INITS = frozenset({"/sbin/init", "/lib/systemd/systemd", "/usr/lib/systemd/systemd", "/usr/sbin/init"})
_KERNEL_FS = {
    "/proc": {"destination": "/proc", "type": "proc", "source": "proc", "options": ["nosuid", "noexec", "nodev"]},
    "/sys": {"destination": "/sys", "type": "sysfs", "source": "sysfs", "options": ["nosuid", "noexec", "nodev"]},
    "/sys/fs/cgroup": {"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup",
                       "options": ["nosuid", "noexec", "nodev", "relatime"]},
}


def is_systemd(spec: dict[str, Any]) -> bool:
    args = spec.get("process", {}).get("args") or [""]
    return args[0] in SYSTEMD_INITS


def _tmpfs(dest: str, options: list[str]) -> dict[str, Any]:
    return {"destination": dest, "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "nodev", *options]}


def is_bind(m: dict[str, Any]) -> bool:
    return m.get("type") == "bind" or bool({"bind", "rbind"} & set(m.get("options") or []))


def _depth(m: dict[str, Any]) -> int:
    return len([p for p in posixpath.normpath(m["destination"]).split("/") if p])


def _host_mounted(dest: str, path: str) -> dict[str, Any]:
    return {"destination": dest, "type": "bind", "source": path, "options": ["rbind", "nosuid", "noexec", "nodev"]}


def apply(spec: dict[str, Any], ctx: Context) -> dict[str, Any]:  # noqa: C901 - one pass over the mounts, one branch per kind of mount
    out: list[dict[str, Any]] = []
    ns_mounts = ctx.ns_mounts or {}
    for m in spec.get("mounts", []):
        dest = posixpath.normpath(m["destination"])
        if dest.startswith("/sys/fs/cgroup/"):
            continue  # the container gets the whole cgroup tree of its own below
        if dest in ns_mounts:  # a joined namespace's filesystem, mounted for it by the host
            m = _host_mounted(dest, ns_mounts[dest])
        elif dest in ("/sys", "/sys/fs/cgroup"):
            m = dict(_KERNEL_FS[dest])  # read-write: the user namespace is what protects the host
        elif is_bind(m) and not m.get("source", "/").startswith("/"):
            # relative bind sources are relative to the bundle, and ours lives elsewhere
            m = {**m, "source": posixpath.normpath(posixpath.join(ctx.bundle, m["source"]))}
        out.append(m)
    have = {posixpath.normpath(m["destination"]) for m in out}
    for dest in ("/proc", "/sys", "/sys/fs/cgroup"):
        if dest not in have:
            out.append(_host_mounted(dest, ns_mounts[dest]) if dest in ns_mounts else dict(_KERNEL_FS[dest]))
            have.add(dest)
    wanted: list[dict[str, Any]] = []
    if is_systemd(spec):
        wanted += [_tmpfs("/run", ["mode=755", "size=64m"]), _tmpfs("/run/lock", ["mode=1777", "size=4m"])]
    if spec.get("root", {}).get("readonly"):
        wanted += [_tmpfs("/run", ["mode=755", "size=64m"]), _tmpfs("/tmp", ["mode=1777", "size=64m"])]
    for d in ctx.special_dirs:
        wanted.append({"destination": d["destination"], "type": "bind", "source": d["source"],
                       "options": ["rbind", "rprivate"]})
    wanted += ctx.fs_nodes
    for m in wanted:
        dest = posixpath.normpath(m["destination"])
        if dest not in have:  # a mount the spec asked for wins
            out.append(m)
            have.add(dest)
    out.sort(key=_depth)  # stable: parents before children, the spec's order otherwise kept
    spec["mounts"] = out
    return spec
