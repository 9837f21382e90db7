"""`run`: create + start, then (unless --detach) wait for the container like runc run does.

runc itself cannot be told to pause between create and start (where cgroups are delegated), so
run is composed from our create and runc's start.  To wait for the container's init we become
a child subreaper first: when `runc create` exits, its init is re-parented to us.
"""

from __future__ import annotations

import os
import signal
import subprocess

from sysbox.runc import state
from sysbox.runc.cli import Invocation
from sysbox.typing_lite import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Callable

    from sysbox.runc import console

_FORWARD = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT, signal.SIGUSR1, signal.SIGUSR2,
            signal.SIGWINCH)


def run(inv: Invocation, runtime: str) -> int:
    from sysbox.linux import syscalls as sc
    from sysbox.runc.create import bundle_dir

    detach = bool(inv.flags.get("detach"))
    if detach:
        return _create_and_start(inv, runtime)
    from sysbox.oci.spec import load_config

    sc.set_child_subreaper()
    if not (load_config(bundle_dir(inv)).get("process", {}).get("terminal") and not inv.flags.get("console-socket")):
        return _foreground(inv, runtime, None)
    from sysbox.runc import console

    with console.ConsoleSocket() as sock:  # runc run's own terminal: we hold the master (console.py)
        inv.flags["console-socket"] = sock.path
        return _foreground(inv, runtime, sock)


def _create_and_start(inv: Invocation, runtime: str, before_start: Callable[[], None] | None = None) -> int:
    from sysbox.runc.create import create
    from sysbox.runc.delete import delete

    rc = create(inv, runtime)
    if rc != 0:
        return rc
    try:
        if before_start:
            before_start()
        rc = subprocess.call([runtime, *inv.lower_globals(), "start", str(inv.container_id)])
    except BaseException:
        delete(_as_delete(inv, force=True), runtime)
        raise
    if rc != 0:
        delete(_as_delete(inv, force=True), runtime)
    return rc


def _foreground(inv: Invocation, runtime: str, sock: console.ConsoleSocket | None) -> int:
    """Wait for the container's init (forwarding signals), relaying its terminal if it has one;
    then delete it unless --keep."""
    import sys

    from sysbox.runc import console
    from sysbox.runc.delete import delete

    masters: list[int] = []

    def take_terminal() -> None:  # sized before the container's process runs, not after
        assert sock is not None
        masters.append(sock.receive())
        console.copy_size(sys.stdin.fileno(), masters[0])

    rc = _create_and_start(inv, runtime, take_terminal if sock else None)
    if rc != 0:
        if masters:
            os.close(masters[0])
        return rc
    meta = state.load_meta(state.container_dir(inv.globals, str(inv.container_id))) or {}
    pid = int(meta["pid"])
    try:
        if not masters:
            for sig in _FORWARD:
                signal.signal(sig, lambda signum, frame: _forward(pid, signum))
            status = _wait(pid)
        else:
            status = _with_terminal(pid, masters[0])
    finally:
        if not inv.flags.get("keep"):
            delete(_as_delete(inv, force=True), runtime)
    return status


def _with_terminal(pid: int, master: int) -> int:
    import sys

    from sysbox.runc import console

    stdin = sys.stdin.fileno()
    for sig in _FORWARD:
        if sig == signal.SIGWINCH:  # as runc: a resize of our terminal resizes the container's
            signal.signal(sig, lambda signum, frame: console.copy_size(stdin, master))
        else:
            signal.signal(sig, lambda signum, frame: _forward(pid, signum))
    raw = console.Raw(stdin)
    status: list[int] = []
    try:
        console.relay(master, lambda: bool(status) or _reaped(pid, status))
    finally:
        raw.restore()
        os.close(master)
    return status[0] if status else _wait(pid)


def _forward(pid: int, signum: int) -> None:
    try:
        os.kill(pid, signum)
    except ProcessLookupError:
        pass


def _exit_code(status: int) -> int:
    return os.waitstatus_to_exitcode(status) if os.WIFEXITED(status) else 128 + os.WTERMSIG(status)


def _reaped(pid: int, status: list[int]) -> bool:
    """Reap whatever has exited (orphans come to us); True once `pid` has, its code in status."""
    while True:
        try:
            got, st = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            status.append(255)
            return True
        if got == 0:
            return False
        if got == pid:
            status.append(_exit_code(st))
            return True


def _wait(pid: int) -> int:
    while True:
        try:
            got, status = os.waitpid(-1, 0)
        except ChildProcessError:
            return 255
        if got == pid:
            return _exit_code(status)


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
