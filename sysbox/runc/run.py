"""`run`: create + start, then (unless --detach) wait for the container like runc run does.

runc itself cannot be told to pause between create and start (where cgroups are delegated), so
run is composed from our create and runc's start.  To wait for the container's init we become
a child subreaper first: when `runc create` exits, its init is re-parented to us.
"""

from __future__ import annotations

import os
import signal
import subprocess

from sysbox.errors import SysboxError
from sysbox.runc import state
from sysbox.runc.cli import Invocation

_FORWARD = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT, signal.SIGUSR1, signal.SIGUSR2,
            signal.SIGWINCH)


def run(inv: Invocation, runtime: str) -> int:
    from sysbox.linux import syscalls as sc
    from sysbox.runc.create import bundle_dir, create
    from sysbox.runc.delete import delete

    detach = bool(inv.flags.get("detach"))
    if not detach:
        from sysbox.oci.spec import load_config

        spec = load_config(bundle_dir(inv))
        if spec.get("process", {}).get("terminal") and not inv.flags.get("console-socket"):
            raise SysboxError("process.terminal: a foreground run with a terminal is not supported yet; "
                              "use run --detach --console-socket, or set terminal to false")
        sc.set_child_subreaper()
    rc = create(inv, runtime)
    if rc != 0:
        return rc
    cid = str(inv.container_id)
    glob = inv.lower_globals()
    rc = subprocess.call([runtime, *glob, "start", cid])
    if rc != 0 or detach:
        if rc != 0:
            delete(_as_delete(inv, force=True), runtime)
        return rc
    meta = state.load_meta(state.container_dir(inv.globals, cid)) or {}
    pid = int(meta["pid"])
    for sig in _FORWARD:
        signal.signal(sig, lambda signum, frame: _forward(pid, signum))
    status = _wait(pid)
    if not inv.flags.get("keep"):
        delete(_as_delete(inv, force=True), runtime)
    return status


def _forward(pid: int, signum: int) -> None:
    try:
        os.kill(pid, signum)
    except ProcessLookupError:
        pass


def _wait(pid: int) -> int:
    while True:
        try:
            got, status = os.waitpid(-1, 0)
        except ChildProcessError:
            return 255
        if got == pid:
            return os.waitstatus_to_exitcode(status) if os.WIFEXITED(status) else 128 + os.WTERMSIG(status)


def _as_delete(inv: Invocation, force: bool) -> Invocation:
    from sysbox.runc import cli

    argv = inv.lower_globals()
    for name in ("mgr-socket", "sysbox-state", "shift-mode", "lower-runtime", "fs-socket"):
        if inv.globals.get(name):
            argv += [f"--{name}", str(inv.globals[name])]
    for name in ("no-sysbox-mgr", "no-sysbox-fs"):
        if inv.globals.get(name):
            argv.append(f"--{name}")
    return cli.parse(argv + ["delete"] + (["--force"] if force else []) + [str(inv.container_id)])
