"""Seccomp: allow the syscalls system software needs inside a user namespace.

Docker's default profile denies mount, unshare, setns, pivot_root, keyctl, ... because an
ordinary container's root is host root.  Here the kernel checks those calls against the
container's user namespace, so they are allowed; calls that need host privilege (module
loading, raw I/O) stay denied and would fail with EPERM regardless.

With sysbox-fs running, mount(2) and umount2(2) are trapped (SCMP_ACT_NOTIFY) instead of
allowed, so a procfs mounted inside gets the emulated nodes and the container's immutable mounts
stay in place; so are the new mount API calls that reach the same mounts (open_tree,
move_mount, mount_setattr, fsopen), and, through argument filters, only the mode-setting calls
that carry S_ISUID or S_ISGID (chmod family, creat, open/openat with O_CREAT, mknod), plus the
setxattr family (file capabilities): sysbox-fs refuses those on bind-mounted host dirs.
sysinfo(2) is trapped too, and answered with the container's memory, uptime and load.
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


TRAPPED_MOUNT = frozenset({"mount", "umount2", "open_tree", "move_mount", "mount_setattr", "fsopen"})
TRAPPED = TRAPPED_MOUNT | {"setxattr", "lsetxattr", "fsetxattr", "sysinfo"}
S_ISUID, S_ISGID, O_CREAT = 0o4000, 0o2000, 0o100
# name -> (index of the mode argument, index of the open flags argument or None)
MODE_CALLS = {"chmod": (1, None), "fchmod": (1, None), "fchmodat": (2, None), "fchmodat2": (2, None),
              "creat": (1, None), "open": (2, 1), "openat": (3, 2), "mknod": (1, None), "mknodat": (2, None)}


def _masked(index: int, bit: int) -> dict[str, Any]:
    return {"index": index, "value": bit, "valueTwo": bit, "op": "SCMP_CMP_MASKED_EQ"}


def mode_rules(names: set[str], permissive: bool = False) -> list[dict[str, Any]]:
    """For each call in `names`: ALLOW when its mode has neither S_ISUID nor S_ISGID (or, for
    open, O_CREAT is not set), NOTIFY when it has one.  Measured with runc 1.1.5: a catch-all
    ALLOW for the same call would win over the NOTIFY rules, and two comparisons of one
    argument in one rule do not combine, so the rules are disjoint, one comparison per arg."""
    rules = []
    for name in sorted(names & MODE_CALLS.keys()):
        mode, flags = MODE_CALLS[name]
        if not permissive:  # under an allowing default, the complement is the default itself
            rules.append({"names": [name], "action": "SCMP_ACT_ALLOW", "args": [
                {"index": mode, "value": S_ISUID | S_ISGID, "valueTwo": 0, "op": "SCMP_CMP_MASKED_EQ"}]})
        if flags is not None and not permissive:
            rules.append({"names": [name], "action": "SCMP_ACT_ALLOW", "args": [
                {"index": flags, "value": O_CREAT, "valueTwo": 0, "op": "SCMP_CMP_MASKED_EQ"}]})
        for bit in (S_ISUID, S_ISGID):
            args = [_masked(mode, bit)] + ([_masked(flags, O_CREAT)] if flags is not None else [])
            rules.append({"names": [name], "action": "SCMP_ACT_NOTIFY", "args": args})
    return rules


def check_listener(spec: dict[str, Any], trapping: bool) -> None:
    """A seccomp agent of the caller's own (linux.seccomp.listenerPath) and our trap cannot
    share a container: the kernel gives a process at most one listener (EBUSY for a second).
    Refused with the trap, passed to runc as is without it (--no-sysbox-fs)."""
    sec = spec.get("linux", {}).get("seccomp") or {}
    if trapping and sec.get("listenerPath"):
        from sysbox.runc.transform import TransformError

        raise TransformError("linux.seccomp.listenerPath: a seccomp agent of your own cannot be used with "
                             "sysbox-fs, which holds the container's one listener (use --no-sysbox-fs)")


def apply(spec: dict[str, Any], trap_socket: str | None = None) -> dict[str, Any]:
    sec = spec.get("linux", {}).get("seccomp")
    if not sec:
        if not trap_socket:
            return spec
        sec = spec.setdefault("linux", {})["seccomp"] = {"defaultAction": "SCMP_ACT_ALLOW"}
    trapped = TRAPPED if trap_socket else frozenset()
    guarded = set(MODE_CALLS) | trapped if trap_socket else set()
    permissive = sec["defaultAction"] in _PERMISSIVE
    rules = []
    allowed: set[str] = set()
    for rule in sec.get("syscalls") or []:
        if rule.get("action") in _PERMISSIVE and not rule.get("args"):
            allowed |= set(rule["names"]) & guarded
        # a catch-all rule for a guarded call would win over its NOTIFY rules: ours replace it
        names = [n for n in rule["names"] if n not in SYSCONT_SYSCALLS and n not in guarded]
        if names:
            rules.append({**rule, "names": names})
    # guarded calls the spec denied stay denied (by its default action); the others are trapped
    guarded = guarded if permissive else guarded & (allowed | SYSCONT_SYSCALLS)
    if sec["defaultAction"] not in _PERMISSIVE:
        rules.append({"names": sorted(SYSCONT_SYSCALLS - trapped), "action": "SCMP_ACT_ALLOW"})
    if trapped:
        rules.append({"names": sorted(trapped & guarded), "action": "SCMP_ACT_NOTIFY"})  # mount calls: always
        rules += mode_rules(guarded, permissive)
        sec["listenerPath"] = trap_socket
    sec["syscalls"] = rules
    return spec
