"""Which sysbox-fs nodes go where in a container: the data sysbox-runc reads (no imports).

(path in the FUSE mount, destination in the container, how, host path that must exist)
how: "file" / "dir" are bind mounts in the spec; "late" is moved in after `runc create`,
because runc refuses mount destinations inside /proc other than a few files.
"""

from __future__ import annotations

MOUNTS: list[tuple[str, str, str, str | None]] = [
    ("proc/uptime", "/proc/uptime", "file", None),
    ("proc/swaps", "/proc/swaps", "file", None),
    ("proc/meminfo", "/proc/meminfo", "file", None),
    ("proc/cpuinfo", "/proc/cpuinfo", "file", None),
    ("proc/stat", "/proc/stat", "file", None),
    ("proc/loadavg", "/proc/loadavg", "file", None),
    ("proc/diskstats", "/proc/diskstats", "file", None),
    ("sys/devices/system/cpu/online", "/sys/devices/system/cpu/online", "file", None),
    ("sys/kernel", "/sys/kernel", "dir", None),
    ("sys/devices/virtual", "/sys/devices/virtual", "dir", None),
    ("sys/module/nf_conntrack/parameters", "/sys/module/nf_conntrack/parameters", "dir",
     "/sys/module/nf_conntrack/parameters"),
    ("proc/sys", "/proc/sys", "late", None),
    ("proc/pressure", "/proc/pressure", "late", "/proc/pressure"),
]
# The FUSE mount is nosuid,nodev,noexec; a bind made inside a user namespace must repeat
# those locked flags or runc's remount fails with EPERM.
BIND_OPTIONS = ["rbind", "nosuid", "nodev", "noexec"]
