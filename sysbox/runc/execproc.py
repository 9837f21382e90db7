"""`exec --process FILE`: give exec'd processes the same capabilities as the container's.

containerd-shim (docker exec, kubectl exec) passes a process spec built by the caller with its
own default capabilities, which lack CAP_SYS_ADMIN & co: inside a system container that would
break mount, unshare, systemd tools and nested runtimes started through `docker exec`.  The
rule is the one create applies (sysbox.runc.transform.caps: the full set for root unless the
container honours its spec's capabilities, the process's own sets for everyone else), and
the rewritten spec goes to a memfd that runc inherits, so nothing is left on disk.
"""

from __future__ import annotations

import json
import os

from sysbox.runc.cli import Invocation


def adjust(inv: Invocation) -> None:
    from sysbox.linux.proc import cap_last_cap
    from sysbox.runc import state
    from sysbox.runc.transform.caps import for_process

    path = str(inv.flags["process"])
    with open(path) as f:
        process = json.load(f)
    cdir = state.container_dir(inv.globals, str(inv.container_id))
    for_process(process, cap_last_cap(), os.path.exists(os.path.join(cdir, state.HONOR_CAPS_MARK)))
    process.pop("apparmorProfile", None)
    fd = os.memfd_create("sysbox-exec-process", 0)  # no CLOEXEC: runc opens /proc/self/fd/N
    os.write(fd, json.dumps(process).encode())
    inv.replace_flag("process", f"/proc/self/fd/{fd}")
