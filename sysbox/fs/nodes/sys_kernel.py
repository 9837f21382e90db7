"""/sys/kernel: the host's, read-only, with debug, tracing, config and security shown empty.

Those four expose host-wide kernel state (and debugfs/tracefs cannot be mounted in a user
namespace anyway); an empty directory is what Sysbox shows too.
"""

from __future__ import annotations

from sysbox.fs.nodes.mirror import HostMirror


class SysKernel(HostMirror):
    base = "/sys/kernel"
    hidden = frozenset({"debug", "tracing", "config", "security"})
