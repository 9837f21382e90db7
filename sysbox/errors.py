"""Turning expected failures into the one-line messages users see."""

from __future__ import annotations


class SysboxError(Exception):
    """An expected failure whose str() is a complete one-line message."""


def describe(exc: BaseException) -> str | None:
    """One line for an expected error, None for a bug (which should show its traceback)."""
    from sysbox.oci.spec import SpecError

    if isinstance(exc, (SysboxError, SpecError)):
        return str(exc)
    if isinstance(exc, OSError):
        text = exc.strerror or str(exc)
        return f"{exc.filename}: {text}" if exc.filename else text
    return None
