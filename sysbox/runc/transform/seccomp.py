"""Seccomp: allow the syscalls system software needs inside a user namespace.

Docker's default profile denies mount, unshare, setns, pivot_root, keyctl, ... because an
ordinary container's root is host root.  Here the kernel checks those calls against the
container's user namespace, so they are allowed; calls that need host privilege (module
loading, raw I/O) stay denied and would fail with EPERM regardless.

With sysbox-fs running, mount(2) is trapped (SCMP_ACT_NOTIFY) instead of allowed, so a procfs
mounted inside gets the emulated nodes; sysbox-fs lets every other mount through unchanged.
"""

from __future__ import annotations

from sysbox.typing_lite import TYPE_CHECKING

if TYPE_CHECKING:
    from typing import Any

SYSCONT_SYSCALLS = frozenset({
    "mount", "umount", "umount2", "unshare", "setns", "pivot_root", "chroot", "sethostname",
    "setdomainname", "keyctl", "add_key", "request_key", "clone", "clone3", "name_to_handle_at",
    "open_tree", "move_mount", "mount_setattr", "fsopen", "fsconfig", "fsmount", "fspick",
    "reboot", "syslog", "personality", "ptrace", "process_vm_readv", "process_vm_writev", "kcmp",
    "quotactl", "vhangup", "acct", "bpf", "perf_event_open", "fanotify_init", "lookup_dcookie",
    "get_mempolicy", "set_mempolicy", "mbind", "move_pages", "userfaultfd", "pidfd_getfd",
})
_PERMISSIVE = {"SCMP_ACT_ALLOW", "SCMP_ACT_LOG"}


TRAPPED = frozenset({"mount", "umount2"})


def apply(spec: dict[str, Any], trap_socket: str | None = None) -> dict[str, Any]:
    sec = spec.get("linux", {}).get("seccomp")
    if not sec:
        if not trap_socket:
            return spec
        sec = spec.setdefault("linux", {})["seccomp"] = {"defaultAction": "SCMP_ACT_ALLOW"}
    trapped = TRAPPED if trap_socket else frozenset()
    rules = []
    for rule in sec.get("syscalls") or []:
        names = [n for n in rule["names"] if n not in SYSCONT_SYSCALLS]
        if names:
            rules.append({**rule, "names": names})
    if sec["defaultAction"] not in _PERMISSIVE:
        rules.append({"names": sorted(SYSCONT_SYSCALLS - trapped), "action": "SCMP_ACT_ALLOW"})
    if trapped:
        rules.append({"names": sorted(trapped), "action": "SCMP_ACT_NOTIFY"})
        sec["listenerPath"] = trap_socket
    sec["syscalls"] = rules
    return spec
