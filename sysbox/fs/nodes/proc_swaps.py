"""/proc/swaps: the container's view has no host swap devices, only the header."""

from __future__ import annotations

from sysbox.fs.container import Container
from sysbox.fs.nodes import File

HEADER = b"Filename\t\t\t\tType\t\tSize\t\tUsed\t\tPriority\n"


class Swaps(File):
    def read(self, c: Container) -> bytes:
        return HEADER
