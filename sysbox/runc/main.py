"""sysbox-runc entry point: runc's command line, with system-container work on create/run.

The hot path (state, kill, ps, events, start, delete) imports nothing beyond `os`, `sys` and
the flag table, then execs runc: containerd calls these many times per container.
"""

from __future__ import annotations

import os
import sys

from sysbox.runc import cli, lower, settings

PROG = "sysbox-runc"


def _log_error(inv: cli.Invocation | None, msg: str) -> None:
    from sysbox.runc.log import log

    log(inv.globals if inv else {}, "error", msg)


def _systemd_stop_signal(inv: cli.Invocation) -> None:
    """`docker stop` sends SIGTERM, which systemd as PID 1 takes as "re-execute yourself": the
    container would only die at the SIGKILL after the timeout.  For a systemd container, turn
    SIGTERM into SIGRTMIN+3, systemd's "shut down cleanly"."""
    if len(inv.args) < 2 or inv.args[1].upper() not in ("TERM", "SIGTERM", "15") or inv.flags.get("all"):
        return
    from sysbox.runc import state

    if os.path.exists(os.path.join(state.container_dir(inv.globals, inv.args[0]), state.SYSTEMD_MARK)):
        inv.args[1] = "37"  # SIGRTMIN+3; runc 1.1 does not parse the RTMIN+n names
        inv.set_args(inv.args)


def _version(runtime: str) -> int:
    """runc's lines first (tools parse `runc version`, `commit:`, `spec:`), then ours."""
    import subprocess

    from sysbox import __version__

    out = subprocess.run([runtime, "--version"], stdout=subprocess.PIPE, check=False)
    sys.stdout.buffer.write(out.stdout)
    sys.stdout.write(f"{PROG} version {__version__}\nlower runtime: {runtime}\n")
    sys.stdout.flush()
    return out.returncode


def main(argv: list[str] | None = None) -> int:  # noqa: C901 - the dispatch table of runc's commands, flat on purpose
    argv = sys.argv[1:] if argv is None else argv
    inv: cli.Invocation | None = None
    try:
        inv = cli.parse(argv)
        runtime = lower.find(settings.get(inv.globals, "lower-runtime"))
        if inv.globals.get("version"):
            return _version(runtime)
        if inv.command == "kill" and not inv.flags.get("help"):
            _systemd_stop_signal(inv)
        if inv.command == "exec" and inv.flags.get("process"):
            from sysbox.runc import execproc

            execproc.adjust(inv)
        if inv.command in ("create", "run", "exec") and not inv.flags.get("help"):
            from sysbox.runc import stdio

            stdio.privatize()
        if inv.command == "exec" and not inv.flags.get("help") and inv.container_id:
            from sysbox.runc import execns

            rc = execns.run(inv, runtime)  # only for namespaces it joined by path
            if rc is not None:
                return rc
        if inv.flags.get("help") or inv.command not in ("create", "run", "delete"):
            lower.exec_(runtime, inv.lower_argv())  # the hot path: nothing else imported
        if inv.command == "create":
            from sysbox.runc.create import create

            return create(inv, runtime)
        if inv.command == "run":
            from sysbox.runc.run import run

            return run(inv, runtime)
        from sysbox.runc.delete import delete

        return delete(inv, runtime)
    except (cli.UsageError, lower.LowerRuntimeError, settings.ConfigError) as e:
        _log_error(inv, str(e))
        return 1
    except Exception as e:  # the one place that turns errors into exit codes
        from sysbox.errors import describe

        msg = describe(e)
        if msg is None:
            raise
        _log_error(inv, msg)
        return 1


if __name__ == "__main__":
    sys.exit(main())
