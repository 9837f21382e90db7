"""`create` and `run`: validate the bundle before runc sees it.

Validation happens before anything is created, so a bad bundle leaves no state dir, mount,
cgroup or manager record behind.
"""

from __future__ import annotations

import os

from sysbox.oci import spec as oci_spec
from sysbox.runc.cli import Invocation


def bundle_dir(inv: Invocation) -> str:
    bundle = inv.flags.get("bundle")
    return os.path.abspath(bundle if isinstance(bundle, str) and bundle else os.getcwd())


def prepare(inv: Invocation) -> dict:
    """Validate the bundle named by the invocation; returns the loaded spec."""
    return oci_spec.load_bundle(bundle_dir(inv))
