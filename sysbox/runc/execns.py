"""`exec` into a container whose net, IPC or UTS namespace its user namespace does not own.

A Kubernetes pod's network namespace is made by containerd, a `docker run --network host`
container joins the host's, and both were made outside the container's user namespace.  runc
1.1 joins the user namespace first and may then not enter such a namespace (setns needs
CAP_SYS_ADMIN over its owner): `kubectl exec` and `docker exec` fail with EPERM.  runc joins
the others first only from 1.3.

So for those containers sysbox-runc joins the foreign namespaces itself, as host root, and
runs runc from a private copy of the container's runc state that leaves them out: runc then
joins the container's user, mount, pid and cgroup namespaces, and the process stays in the
namespaces joined beforehand.  runc is our child and (with --detach, as the shims run it)
leaves the process to the shim, the subreaper, as usual.  The copy is removed when runc exits.
"""

from __future__ import annotations

import json
import os
import subprocess
import tempfile

from sysbox.runc import state
from sysbox.runc.cli import Invocation

# runc's namespace type names -> /proc/PID/ns names and setns flags
_JOINABLE = {"NEWNET": ("net", 0x40000000), "NEWIPC": ("ipc", 0x08000000), "NEWUTS": ("uts", 0x04000000)}


def foreign_namespaces(runc_state: dict) -> list[tuple[str, str]]:
    """(runc type, path) of the joinable namespaces whose owner is not the container's user
    namespace, from runc's state.json (its config's namespace list and the init pid)."""
    from sysbox.linux.ns import owner_ino

    pid = runc_state.get("init_process_pid")
    namespaces = ((runc_state.get("config") or {}).get("namespaces")) or []
    kinds = {ns.get("type"): ns.get("path") or "" for ns in namespaces}
    if not pid or "NEWUSER" not in kinds:
        return []
    user = os.stat(f"/proc/{pid}/ns/user").st_ino
    out = []
    for kind, (name, _flag) in _JOINABLE.items():
        if kind in kinds:
            path = f"/proc/{pid}/ns/{name}"
            if owner_ino(path) != user:
                out.append((kind, path))
    return out


def run(inv: Invocation, runtime: str) -> int | None:
    """Run the exec this way if the container needs it; None when plain runc can do it."""
    root = state.runc_root(inv.globals)
    cid = str(inv.container_id)
    try:
        with open(os.path.join(root, cid, "state.json")) as f:
            current = json.load(f)
    except (OSError, ValueError):
        return None  # runc will report the missing container itself
    foreign = foreign_namespaces(current)
    if not foreign:
        return None
    from sysbox.linux import syscalls as sc

    for kind, path in foreign:  # as host root, before runc enters the user namespace
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        try:
            sc.setns(fd, _JOINABLE[kind][1])
        finally:
            os.close(fd)
    skip = {kind for kind, _ in foreign}
    current["config"]["namespaces"] = [ns for ns in current["config"]["namespaces"] if ns.get("type") not in skip]
    with tempfile.TemporaryDirectory(prefix=f"exec-{cid[:12]}-", dir=os.path.dirname(root) or "/run") as tmp:
        os.chmod(tmp, 0o700)
        os.mkdir(os.path.join(tmp, cid), 0o700)
        state.write_private(os.path.join(tmp, cid, "state.json"), json.dumps(current))
        argv = inv.lower_argv()
        globals_ = _without_root(inv.lower_globals())
        # every inherited fd goes on, as with execv: the --process memfd, --preserve-fds, stdio
        return subprocess.call([runtime, *globals_, "--root", tmp, *argv[len(inv.lower_globals()):]], close_fds=False)


def _without_root(globals_: list[str]) -> list[str]:
    """runc's global flags minus --root (ours replaces it)."""
    out, skip = [], False
    for a in globals_:
        if skip:
            skip = False
        elif a == "--root":
            skip = True
        elif not a.startswith("--root="):
            out.append(a)
    return out
