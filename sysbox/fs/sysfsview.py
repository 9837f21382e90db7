"""A container's own /sys/devices/virtual (its network devices), for sysbox-fs's sysfs nodes."""

from __future__ import annotations

import os

from sysbox.linux import ns
from sysbox.linux import syscalls as sc
from sysbox.linux.tree import detach_all


def mount_devices_virtual(ns_fds: dict[str, int], path: str) -> None:
    """/sys/devices/virtual as the container's network namespace shows it (sysfs shows the
    net devices of its mounter's namespace), bound under our state dir, read-only.  Only
    that subtree stays mounted: a whole sysfs on the host, in a directory a container's root
    cannot reach, would make runc's --no-pivot fail for every other container (it covers
    each full proc/sysfs mount of the host, and EACCES stops it)."""

    full = path + ".full"
    for d in (path, full):
        os.makedirs(d, mode=0o700, exist_ok=True)
        detach_all(d)  # one left by a sysbox-fs that was killed: not stacked again

    def mount() -> None:
        sc.mount("sysfs", full, "sysfs", sc.MS_RDONLY | sc.MS_NOSUID | sc.MS_NODEV | sc.MS_NOEXEC)
        try:
            sc.mount(os.path.join(full, "devices", "virtual"), path, "", sc.MS_BIND)
        finally:
            sc.umount2(full, sc.MNT_DETACH)

    ns.within(ns_fds, ("net",), mount)
    os.rmdir(full)
