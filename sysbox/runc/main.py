"""sysbox-runc entry point: runc's command line, with system-container work on create/run.

The hot path (state, kill, ps, events, start, delete) imports nothing beyond `os`, `sys` and
the flag table, then execs runc: containerd calls these many times per container.
"""

from __future__ import annotations

import os
import sys

from sysbox.runc import cli, lower

PROG = "sysbox-runc"


def _log_error(inv: cli.Invocation | None, msg: str) -> None:
    """Write the error where runc's callers look: stderr, and the --log file if one was given.

    containerd-shim-runc-v2 reads the last `error` entry of the JSON log to report why a
    runtime call failed, so errors must land there in runc's format.
    """
    sys.stderr.write(f"{PROG}: {msg}\n")
    log = inv.globals.get("log") if inv else None
    if not isinstance(log, str) or not log:
        return
    import json
    import time

    stamp = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    if inv is not None and inv.globals.get("log-format") == "json":
        line = json.dumps({"level": "error", "msg": msg, "time": stamp})
    else:
        line = f'time="{stamp}" level=error msg={json.dumps(msg)}'
    try:
        with open(log, "a") as f:
            f.write(line + "\n")
    except OSError:
        pass


def _version(runtime: str) -> int:
    from sysbox import __version__
    import subprocess

    sys.stdout.write(f"{PROG} version {__version__}\nlower runtime: {runtime}\n")
    sys.stdout.flush()
    return subprocess.call([runtime, "--version"])


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    inv: cli.Invocation | None = None
    try:
        inv = cli.parse(argv)
        runtime = lower.find(inv.globals.get("lower-runtime"))  # type: ignore[arg-type]
        if inv.globals.get("version"):
            return _version(runtime)
        if inv.command in ("create", "run") and not inv.flags.get("help"):
            from sysbox.runc import create

            create.prepare(inv)
        lower.exec_(runtime, inv.lower_argv())
    except (cli.UsageError, lower.LowerRuntimeError) as e:
        _log_error(inv, str(e))
        return 1
    except Exception as e:  # noqa: BLE001 - the one place that turns errors into exit codes
        from sysbox.errors import describe

        msg = describe(e)
        if msg is None:
            raise
        _log_error(inv, msg)
        return 1
    return 0  # not reached: exec_ replaced the process


if __name__ == "__main__":
    sys.exit(main())
