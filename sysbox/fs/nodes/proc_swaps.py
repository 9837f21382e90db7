"""/proc/swaps: the container's view has no host swap devices, only the header."""

from __future__ import annotations

from sysbox.fs.nodes import File
from sysbox.fs.registry import Container

HEADER = b"Filename\t\t\t\tType\t\tSize\t\tUsed\t\tPriority\n"


class Swaps(File):
    def read(self, c: Container) -> bytes:
        return HEADER
