"""/sys/kernel: the host's, read-only; security shown empty; debug, tracing and config hidden.

They expose host-wide kernel state.  debugfs, tracefs and configfs cannot be mounted in a
user namespace at all, so their mount points are hidden rather than emptied: systemd's
sys-kernel-{debug,tracing,config}.mount units are conditioned on the directory existing, and
skip instead of failing (Sysbox shows them empty, and those units fail there).
"""

from __future__ import annotations

from sysbox.fs.nodes.mirror import HostMirror


class SysKernel(HostMirror):
    base = "/sys/kernel"
    hidden = frozenset({"security"})
    absent = frozenset({"debug", "tracing", "config"})
