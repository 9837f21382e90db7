"""A progress bar on a terminal, milestone lines elsewhere (logs, tests, CI)."""

from __future__ import annotations

import sys
import time


class Bar:
    def __init__(self, label: str, total: int, stream=None) -> None:
        self.label, self.total = label, max(1, total)
        self.stream = stream or sys.stderr
        self.tty = self.stream.isatty()
        self.started = time.monotonic()
        self.last_pct = -1

    def update(self, done: int) -> None:
        pct = min(99, int(100 * done / self.total))
        if pct == self.last_pct:
            return
        self.last_pct = pct
        if self.tty:
            width = 30
            fill = width * pct // 100
            self.stream.write(f"\r{self.label:<24} [{'#' * fill}{'.' * (width - fill)}] {pct:3d}%")
            self.stream.flush()
        elif pct // 25 != (pct - 1) // 25 and pct:  # 25, 50, 75
            self.stream.write(f"{self.label}: {pct}%\n")

    def finish(self, note: str = "") -> None:
        secs = time.monotonic() - self.started
        end = f"{self.label:<24} [{'#' * 30}] 100% {secs:.1f}s {note}".rstrip()
        self.stream.write(("\r" + end if self.tty else f"{self.label}: done in {secs:.1f}s {note}".rstrip()) + "\n")
        self.stream.flush()
