"""`delete`: let runc delete the container, then undo what create did, from its record."""

from __future__ import annotations

from sysbox.runc import state
from sysbox.runc.context import Context
from sysbox.typing_lite import TYPE_CHECKING

if TYPE_CHECKING:
    from sysbox.runc.cli import Invocation


def delete(inv: Invocation, runtime: str) -> int:
    ctx = Context(inv, runtime)
    if not ctx.host.exists(ctx.cdir):  # called without our flags (podman's cleanup): ask runc's record
        ctx.cdir = state.recorded_dir(ctx.runc_root, ctx.id) or ctx.cdir
    rc = ctx.host.runc([runtime, *inv.lower_argv()])
    finish(ctx)
    return rc


def force(ctx: Context) -> None:
    """runc delete --force, then the undo: what `run` does when it is done with a container."""
    ctx.host.runc(ctx.runc("delete", "--force", ctx.id))
    finish(ctx)


def finish(ctx: Context) -> None:
    """Undo the record once runc has let the container go (a refused delete keeps both)."""
    from sysbox.runc import record, steps

    if not ctx.host.runc_has(ctx.runc_root, ctx.id) and ctx.host.exists(ctx.cdir):
        steps.undo_all(ctx, ctx.host.load(ctx.cdir) or record.Record(ctx.id))
