"""sysbox-fs's clock: the host's time since boot, which containers' uptimes count from."""

from __future__ import annotations

import os
import time

CLK_TCK = os.sysconf("SC_CLK_TCK")


def host_uptime() -> float:
    """Seconds since boot, on the clock /proc/uptime and process start times count in
    (CLOCK_BOOTTIME): a vDSO call instead of a file read on every /proc/uptime open."""
    return time.clock_gettime(time.CLOCK_BOOTTIME)
