"""Hooks that runc starts from `runc create` see the caller's bundle in their state.

runc names the bundle in the OCI state after the directory it read config.json from, which
for us is the rewritten copy.  After `runc create` the record in runc's state.json is put back
(`state.restore_bundle`), which covers `state` and `list`.  Every hook whose path resolves on
the host (all but startContainer) is started through `sysbox/runc/hookstate.py`, which sets the
bundle on its stdin and execs the hook: runc 1.1 runs poststart at create, before the record
can be put back.
startContainer hooks run inside the container, where no wrapper of ours exists: they see the
copy (docs/runc-differences.md).
"""

from __future__ import annotations

import os
import sys

from sysbox.typing_lite import TYPE_CHECKING

if TYPE_CHECKING:
    from typing import Any

WRAPPED = ("prestart", "createRuntime", "createContainer", "poststart", "poststop")
WRAPPER = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "hookstate.py")


def wrapper_source() -> str:
    with open(WRAPPER) as f:
        return f.read()


def apply(spec: dict[str, Any], bundle: str, copy: str = "", python: str = "", source: str = "") -> dict[str, Any]:
    """Route the host-side hooks through the state wrapper; the hook's own path, args, env
    and timeout are kept (the wrapper execs the hook, so a timeout kills the hook itself).
    The wrapper's source goes on the command line (-c): createContainer hooks start inside the
    container's user namespace, which may not be able to read our installation's files.
    `copy` is the bundle runc will name (our state dir), which the wrapper replaces."""
    hooks = spec.get("hooks")
    if not hooks or not any(hooks.get(kind) for kind in WRAPPED):
        return spec
    from sysbox import jsonfast

    python = python or os.path.realpath(sys.executable)
    source = source or wrapper_source()
    named = jsonfast.dumps(bundle)  # as it goes into the state's JSON
    for kind in WRAPPED:
        for hook in hooks.get(kind) or []:
            args = hook.get("args") or [hook["path"]]
            hook["args"] = [python, "-I", "-S", "-c", source, copy, named, hook["path"], *args]
            hook["path"] = python
    return spec
