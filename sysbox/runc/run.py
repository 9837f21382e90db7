"""`run`: create + start, then (unless --detach) wait for the container like runc run does.

runc itself cannot be told to pause between create and start (where cgroups are delegated), so
run is composed from our create and runc's start.  To wait for the container's init we become
a child subreaper first: when `runc create` exits, its init is re-parented to us.
"""

from __future__ import annotations

import os

from sysbox.typing_lite import TYPE_CHECKING

if TYPE_CHECKING:
    import signal
else:  # signal.py wraps the same functions in enums at import (enum, functools: ~5 ms a run)
    import _signal as signal

if TYPE_CHECKING:
    from collections.abc import Callable

    from sysbox.runc import console
    from sysbox.runc.cli import Invocation
    from sysbox.runc.context import Context
    from sysbox.runc.steps import Work

_FORWARD = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT, signal.SIGUSR1, signal.SIGUSR2,
            signal.SIGWINCH)


def run(inv: Invocation, runtime: str) -> int:
    from sysbox.runc import create
    from sysbox.runc.context import Context

    ctx = Context(inv, runtime)
    work = create.check(ctx)
    if inv.flags.get("detach"):
        return _create_and_start(ctx, work)[0]
    from sysbox.linux import syscalls as sc

    sc.set_child_subreaper()
    if not (work.spec.get("process", {}).get("terminal") and not inv.flags.get("console-socket")):
        return _foreground(ctx, work, None, bool(inv.flags.get("keep")))
    from sysbox.runc import console

    with console.ConsoleSocket() as sock:  # runc run's own terminal: we hold the master (console.py)
        ctx.create_flags += ["--console-socket", sock.path]
        return _foreground(ctx, work, sock, bool(inv.flags.get("keep")))


def _create_and_start(ctx: Context, work: Work, before_start: Callable[[], None] | None = None) -> tuple[int, int]:
    """(0, init's pid) with the container started, or (the failing status, 0) with nothing left."""
    from sysbox.runc import create, delete, steps

    try:
        rec = create.make(ctx, work)
    except steps.RuncFailed as e:
        return e.rc, 0
    try:
        if before_start:
            before_start()
        rc = ctx.host.runc(ctx.runc("start", ctx.id))
    except BaseException:
        delete.force(ctx)
        raise
    if rc != 0:
        delete.force(ctx)
    assert rec.pid is not None
    return rc, rec.pid


def _foreground(ctx: Context, work: Work, sock: console.ConsoleSocket | None, keep: bool) -> int:
    """Wait for the container's init (forwarding signals), relaying its terminal if it has one;
    then delete it unless --keep."""
    import sys

    from sysbox.runc import delete

    masters: list[int] = []

    def take_terminal() -> None:  # sized before the container's process runs, not after
        from sysbox.runc import console

        assert sock is not None
        masters.append(sock.receive())
        console.copy_size(sys.stdin.fileno(), masters[0])

    rc, pid = _create_and_start(ctx, work, take_terminal if sock else None)
    if rc != 0:
        if masters:
            os.close(masters[0])
        return rc
    try:
        if not masters:
            for sig in _FORWARD:
                signal.signal(sig, lambda signum, frame: _forward(pid, signum))
            status = _wait(pid)
        else:
            status = _with_terminal(pid, masters[0])
    finally:
        if not keep:
            delete.force(ctx)
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
