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

import os

from sysbox.runc import state
from sysbox.runc.cli import Invocation

# runc's namespace type names -> /proc/PID/ns names and setns flags
_JOINABLE = {"NEWNET": ("net", 0x40000000), "NEWIPC": ("ipc", 0x08000000), "NEWUTS": ("uts", 0x04000000)}
_NS_GET_USERNS = 0xB701  # as sysbox.linux.ns, which the exec path may not import (ctypes)


def _init_pid(state_json: bytes) -> int | None:
    """The init pid from runc's state.json, without importing json (exec is a hot path)."""
    key = b'"init_process_pid":'
    at = state_json.find(key)
    if at < 0:
        return None
    digits = state_json[at + len(key):at + len(key) + 12].lstrip().split(b",")[0].strip()
    return int(digits) if digits.isdigit() else None


def _owner(path: str) -> int:
    import fcntl

    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        owner = fcntl.ioctl(fd, _NS_GET_USERNS)
    finally:
        os.close(fd)
    try:
        return os.fstat(owner).st_ino
    finally:
        os.close(owner)


def foreign_namespaces(pid: int) -> list[tuple[str, str]]:
    """(runc type, path) of the init's net/ipc/uts namespaces that its user namespace does not own."""
    user = os.stat(f"/proc/{pid}/ns/user").st_ino
    return [(kind, f"/proc/{pid}/ns/{name}") for kind, (name, _flag) in _JOINABLE.items()
            if _owner(f"/proc/{pid}/ns/{name}") != user]


def run(inv: Invocation, runtime: str) -> int | None:
    """Run the exec this way if the container needs it; None when plain runc can do it."""
    root = state.runc_root(inv.globals)
    cid = str(inv.container_id)
    try:
        with open(os.path.join(root, cid, "state.json"), "rb") as f:
            raw = f.read()
        pid = _init_pid(raw)
        foreign = foreign_namespaces(pid) if pid else []
    except OSError:
        return None  # runc will report what is wrong itself
    if not foreign:
        return None
    import json
    import subprocess
    import tempfile

    from sysbox.linux import syscalls as sc

    current = json.loads(raw)

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
