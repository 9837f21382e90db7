"""Terminal window sizes (TIOCGWINSZ/TIOCSWINSZ), for a foreground run's pty."""

from __future__ import annotations

import fcntl
import struct
import termios

_WINSIZE = struct.Struct("HHHH")  # rows, columns, x pixels, y pixels


def window_size(fd: int) -> tuple[int, int, int, int] | None:
    """The size of the terminal on fd; None if fd is not a terminal."""
    try:
        return _WINSIZE.unpack(fcntl.ioctl(fd, termios.TIOCGWINSZ, b"\0" * _WINSIZE.size))
    except OSError:
        return None


def set_window_size(fd: int, size: tuple[int, int, int, int]) -> None:
    fcntl.ioctl(fd, termios.TIOCSWINSZ, _WINSIZE.pack(*size))
