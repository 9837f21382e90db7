"""`sysbox logs NAME [-f]`: what a VM printed.

A systemd VM logs to its journal, so that is what is shown (journalctl inside the VM, the
same view `journalctl` gives there); any other VM's output is its console, which `run` and
`start` send to console.log.  A stopped VM shows its console.  -f follows until the VM stops
(or the user interrupts), as `docker logs -f` does.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

from sysbox.devvm import commands, vmspec
from sysbox.devvm.commands import Env


def _spec_is_systemd(env: Env, name: str) -> bool:
    try:
        with open(os.path.join(env.store.cdir(name), "bundle", "config.json")) as f:
            return vmspec.is_systemd(json.load(f))
    except (OSError, ValueError):
        return False


def logs(env: Env, name: str, follow: bool, out=None) -> int:
    out = out or sys.stdout.buffer
    meta = env.store.load(name)
    running = commands.status(env, meta) == "running"
    if running and _spec_is_systemd(env, name):
        argv = env.runtime() + ["exec", meta["id"], "journalctl", "--no-pager", "-b"] + (["-f"] if follow else [])
        out.flush()
        rc = subprocess.call(argv, stdin=subprocess.DEVNULL, stdout=out)
        if rc not in (126, 127):  # 127: no journalctl in there after all
            return rc
    return _console(env, meta, follow, out)


def _console(env: Env, meta: dict, follow: bool, out) -> int:
    path = os.path.join(env.store.cdir(meta["name"]), "console.log")
    if not os.path.exists(path):
        return 0
    with open(path, "rb") as f:
        while True:
            chunk = f.read(65536)
            if chunk:
                out.write(chunk)
                continue
            out.flush()
            if not follow or commands.status(env, meta) != "running":
                return 0
            time.sleep(0.25)
