"""`exec` into a container whose net, IPC or UTS namespace its user namespace does not own.

A Kubernetes pod's network namespace is made by containerd, a `docker run --network host`
container joins the host's, and both were made outside the container's user namespace.  runc
1.1 joins the user namespace first and may then not enter such a namespace (setns needs
CAP_SYS_ADMIN over its owner): `kubectl exec` and `docker exec` fail with EPERM.  runc joins
the others first only from 1.3.

A namespace the spec joins by path can never be owned by the user namespace runc makes for the
container afterwards, so create records which ones it joined (state.JOINED_NS_MARK) and that
mark alone decides here: the exec hot path reads one small file, nothing else.  For those
containers sysbox-runc joins the foreign namespaces itself, as host root, and runs runc from a
private copy of the container's runc state that leaves them out: runc then joins the user,
mount, pid and cgroup namespaces, and the process stays in the namespaces joined beforehand.
runc is our child and (with --detach, as the shims run it) leaves the process to the shim,
the subreaper, as usual.  The copy is removed when runc exits.
"""

from __future__ import annotations

import os

from sysbox.runc import state
from sysbox.runc.cli import Invocation

# OCI namespace types -> runc's type names and /proc/PID/ns names
JOINABLE = {"network": ("NEWNET", "net"), "ipc": ("NEWIPC", "ipc"), "uts": ("NEWUTS", "uts")}


def joined_kinds(spec: dict) -> list[str]:
    """The OCI types of the joinable namespaces the spec joins by path (for create's mark)."""
    return sorted(ns["type"] for ns in (spec.get("linux") or {}).get("namespaces") or []
                  if ns.get("type") in JOINABLE and ns.get("path"))


def run(inv: Invocation, runtime: str) -> int | None:
    """Run the exec this way if the container needs it; None when plain runc can do it."""
    cid = str(inv.container_id)
    try:
        with open(os.path.join(state.container_dir(inv.globals, cid), state.JOINED_NS_MARK)) as f:
            kinds = [k for k in f.read().split() if k in JOINABLE]
    except OSError:
        return None  # joins nothing (or is not ours): plain runc
    if not kinds:
        return None
    import json
    import subprocess
    import tempfile

    from sysbox.linux import ns

    root = state.runc_root(inv.globals)
    with open(state.runc_state_file(inv.globals, cid)) as f:
        current = json.load(f)
    pid = current["init_process_pid"]
    names = tuple(JOINABLE[kind][1] for kind in kinds)
    fds = ns.open_ns_fds(pid, names)
    try:
        ns.enter(fds, names)  # as host root, before runc enters the user namespace
    finally:
        ns.close_all(fds)
    skip = {JOINABLE[kind][0] for kind in kinds}
    current["config"]["namespaces"] = [n for n in current["config"]["namespaces"] if n.get("type") not in skip]
    with tempfile.TemporaryDirectory(prefix=f"exec-{cid[:12]}-", dir=os.path.dirname(root) or "/run") as tmp:
        os.chmod(tmp, 0o700)
        os.mkdir(os.path.join(tmp, cid), 0o700)
        state.write_private(os.path.join(tmp, cid, "state.json"), json.dumps(current))
        globals_ = inv.lower_globals()
        # every inherited fd goes on, as with execv: the --process memfd, --preserve-fds, stdio
        return subprocess.call([runtime, *_without_root(globals_), "--root", tmp,
                                *inv.lower_argv()[len(globals_):]], close_fds=False)


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
