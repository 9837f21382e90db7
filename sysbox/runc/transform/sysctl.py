"""Which of the spec's sysctls belong to namespaces the container joins by path.

A namespace joined by path (a Kubernetes pod's netns made by containerd, podman's netns) was
made before the container's user namespace, so that user namespace does not own it: runc,
writing linux.sysctl from inside the container, gets EACCES ("open /proc/sys/...: permission
denied") and the pod never starts.  Those entries are taken out of the spec here and written
by sysbox-runc on the host side, in the joined namespace, before runc creates the container;
the kernel validates each value as for any writer (EINVAL and friends).  Their ids (e.g.
net.ipv4.ping_group_range) are the namespace owner's, the host's, as the caller wrote them.
Only knobs the kernel keys by that namespace are taken; anything else stays for runc, which
refuses non-namespaced sysctls itself.
"""

from __future__ import annotations

from sysbox.typing_lite import TYPE_CHECKING

if TYPE_CHECKING:
    from typing import Any

# sysctl prefix -> the namespace type (OCI names) that keys it
_NAMESPACED = (("net.", "network"), ("kernel.shm", "ipc"), ("kernel.msg", "ipc"), ("kernel.sem", "ipc"),
               ("fs.mqueue.", "ipc"), ("kernel.hostname", "uts"), ("kernel.domainname", "uts"))


def namespace_of(knob: str) -> str | None:
    return next((kind for prefix, kind in _NAMESPACED if knob.startswith(prefix)), None)


def split_joined(spec: dict[str, Any]) -> tuple[dict[str, Any], list[tuple[str, str, str, str]]]:
    """(spec without them, [(namespace type, path, knob, value)]) for the sysctls whose namespace
    the spec joins by path.  The input spec is not modified."""
    linux = spec.get("linux") or {}
    sysctl = linux.get("sysctl") or {}
    joined = {ns.get("type"): ns.get("path") for ns in linux.get("namespaces") or [] if ns.get("path")}
    taken: list[tuple[str, str, str, str]] = []
    for knob in sorted(sysctl):
        kind = namespace_of(knob)
        if kind is not None and kind in joined:
            taken.append((kind, joined[kind], knob, str(sysctl[knob])))
    if not taken:
        return spec, []
    keep = {k: v for k, v in sysctl.items() if k not in {t[2] for t in taken}}
    return {**spec, "linux": {**linux, "sysctl": keep}}, taken
