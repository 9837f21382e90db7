"""`create`: turn the bundle into a system container, then let runc create it.

Two phases.  `check` runs everything that can refuse the spec, before anything is made, so a
refused spec leaves nothing behind; `make` runs the steps (steps.py), each recorded before it
acts, and on any failure undoes what the record lists.
"""

from __future__ import annotations

from sysbox.errors import SysboxError
from sysbox.runc import steps
from sysbox.runc.context import Context
from sysbox.runc.record import Record
from sysbox.typing_lite import TYPE_CHECKING

if TYPE_CHECKING:
    from typing import Any

    from sysbox.runc.cli import Invocation


def create(inv: Invocation, runtime: str) -> int:
    """Run the whole create; returns runc's exit status (non-zero means nothing is left)."""
    ctx = Context(inv, runtime)
    try:
        make(ctx, check(ctx))
    except steps.RuncFailed as e:
        return e.rc
    return 0


def check(ctx: Context) -> steps.Work:
    """Load and check the bundle; finish undoing a create or delete of this id that was killed."""
    from sysbox.oci import spec as oci_spec
    from sysbox.runc import delete, fsnodes, transform
    from sysbox.runc.transform import caps, namespaces, seccomp

    spec = oci_spec.load_bundle(ctx.bundle, (lambda s: _validate_in_mgr(ctx, s)) if ctx.mgr_socket else None)
    transform.check(spec)
    ctx.check_shift_mode()
    if ctx.host.runc_has(ctx.runc_root, ctx.id):
        raise SysboxError(f"container with id exists: {ctx.id}")
    delete.finish(ctx)  # a state dir left by a killed create or delete of this id
    requested = namespaces.requested_mappings(spec)
    if not ctx.mgr_socket:
        if requested is None:
            raise SysboxError("linux.uidMappings: required with --no-sysbox-mgr (no manager to allocate ids)")
        _check_pool(ctx, requested)
    devices: list[dict[str, Any]] = []
    if spec.get("linux", {}).get("devices"):
        from sysbox.runc.transform import devices as device_specs

        # the manager's ranges are MIN_SIZE long; a spec's own mapping says its size
        devices = device_specs.wanted(spec, (requested or {}).get("size", namespaces.MIN_SIZE))
    fs = fsnodes.connect(ctx)
    seccomp.check_listener(spec, bool(fs))
    return steps.Work(spec, requested, devices, fs, caps.honored(spec, ctx.honor_caps))


def make(ctx: Context, work: steps.Work) -> Record:
    """Run the steps; raises steps.RuncFailed if runc refused (nothing is left then either)."""
    rec = Record(ctx.id, ctx.bundle, ctx.mgr_socket, ctx.keep)
    steps.do_all(ctx, rec, work)
    return rec


def _validate_in_mgr(ctx: Context, spec: dict[str, Any]) -> None:
    """Schema validation by the manager: same validator, same messages, no import here."""
    from sysbox.ipc import IPCError
    from sysbox.oci import spec as oci_spec

    assert ctx.mgr_socket
    try:
        ctx.host.mgr(ctx.mgr_socket, "validate", spec=spec)
    except IPCError as e:
        if e.code == "invalid-spec":
            raise oci_spec.SpecError(str(e)) from None
        raise


def _check_pool(ctx: Context, m: dict[str, int]) -> None:
    """Without a manager, a spec's own mapping must still lie inside the sysbox entries of
    /etc/subuid and /etc/subgid: ids outside them are host users'."""
    from sysbox import subid

    for path, key, field in ((subid.SUBUID, "uid", "uidMappings"), (subid.SUBGID, "gid", "gidMappings")):
        ranges = ctx.host.subid_ranges(path)
        if not any(start <= m[key] and m[key] + m["size"] <= start + count for start, count in ranges):
            raise SysboxError(f"linux.{field}: host ids {m[key]}-{m[key] + m['size'] - 1} are not inside the "
                              f"{subid.USER} entry of {path}")
