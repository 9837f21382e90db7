"""create as an ordered list of undoable steps; delete as their undo, in reverse.

Each step's `do` first writes into the record what it is about to make, then makes it; its
`undo` removes what the record lists and nothing else, tolerates having run before (a delete
killed half-way is run again) and a record the step never reached.  So one walk serves a
failed create, a create that was killed (the next create or delete of the id finishes it) and
delete.  Side effects go through ctx.host (host.py), which unit tests replace.

`Work` carries what steps hand to later steps in this one process (the spec as it is being
rewritten, the id range); nothing in it is needed to undo.
"""

from __future__ import annotations

import os
import posixpath

from sysbox import jsonfast as json
from sysbox.errors import SysboxError
from sysbox.typing_lite import TYPE_CHECKING

if TYPE_CHECKING:
    from typing import Any

    from sysbox.runc.context import Context
    from sysbox.runc.record import FsRecord, Record, RootfsRecord


class RuncFailed(Exception):
    """runc's create exited non-zero (it printed why); create returns its status."""

    def __init__(self, rc: int) -> None:
        super().__init__(f"runc create exited {rc}")
        self.rc = rc


class Work:
    """What create's steps pass on: the checks' results (create.check), then the steps' own."""

    __slots__ = ("devices", "fs", "gid", "honor_caps", "new", "nodes", "ns_mounts", "requested", "size", "spec",
                 "special_dirs", "uid")

    def __init__(self, spec: dict[str, Any], requested: dict[str, int] | None, devices: list[dict[str, Any]],
                 fs: FsRecord | None, honor_caps: bool) -> None:
        self.spec = spec  # the caller's spec, validated (sysctls of joined namespaces taken out by a step)
        self.requested = requested  # the spec's own id mapping, if it has one
        self.devices = devices  # linux.devices, checked
        self.fs = fs  # the sysbox-fs instance to use, None without one
        self.honor_caps = honor_caps  # keep the spec's capabilities for root (transform/caps.py)
        self.uid = self.gid = self.size = 0
        self.special_dirs: list[dict[str, Any]] = []
        self.ns_mounts: dict[str, str] = {}  # container destination -> host mount
        self.nodes: dict[str, str] = {}  # container path -> host device node
        self.new: dict[str, Any] = {}  # the rewritten spec


class Step:
    """One stage of create.  `do` may raise; `undo` must be safe to run at any time."""

    name = ""

    def do(self, ctx: Context, rec: Record, work: Work) -> None:
        raise NotImplementedError

    def undo(self, ctx: Context, rec: Record) -> None:
        """Nothing to undo (the default): the step's products live in the state dir."""


class StateDir(Step):
    name = "state dir"

    def do(self, ctx: Context, rec: Record, work: Work) -> None:
        ctx.host.makedirs(ctx.cdir)
        ctx.host.save(ctx.cdir, rec)

    def undo(self, ctx: Context, rec: Record) -> None:
        ctx.host.remove_dir(ctx.cdir)


class Register(Step):
    """An id range and special dirs from sysbox-mgr, or the spec's own mapping without one."""

    name = "register"

    def do(self, ctx: Context, rec: Record, work: Work) -> None:
        if not rec.mgr_socket:
            assert work.requested is not None  # create.check refuses a spec without one
            work.uid, work.gid, work.size = work.requested["uid"], work.requested["gid"], work.requested["size"]
            return
        mounted = {os.path.normpath(m["destination"]) for m in work.spec.get("mounts", [])}
        from sysbox.mgr.protocol import SPECIAL_DIRS

        args: dict[str, Any] = {"id": rec.id, "rootfs": os.path.realpath(_src_rootfs(ctx, work.spec)),
                                "special_dirs": sorted(k for k, d in SPECIAL_DIRS.items() if d not in mounted),
                                "runtime_root": ctx.runc_root}
        if work.requested:
            args["mappings"] = work.requested
        if rec.keep:  # kept from the start: runc's delete and our unregister are not atomic
            args["keep"] = True
        rec.registered = True
        ctx.host.save(ctx.cdir, rec)
        reg = ctx.host.mgr(rec.mgr_socket, "register", **args)
        work.uid, work.gid, work.size = reg["uid"], reg["gid"], reg["size"]
        work.special_dirs = reg["special_dirs"]

    def undo(self, ctx: Context, rec: Record) -> None:
        if not (rec.registered and rec.mgr_socket):
            return
        from sysbox.ipc import IPCError

        try:
            ctx.host.mgr(rec.mgr_socket, "unregister", id=rec.id, keep=rec.keep)
        except IPCError as e:
            if e.code != "not-found":  # the manager's own sweep releases it once runc's state is gone
                ctx.log("warning", f"could not unregister {rec.id} from sysbox-mgr: {e}")


def _src_rootfs(ctx: Context, spec: dict[str, Any]) -> str:
    from sysbox.oci import spec as oci_spec

    return oci_spec.rootfs_path(ctx.bundle, spec)


class Rootfs(Step):
    name = "rootfs"

    def do(self, ctx: Context, rec: Record, work: Work) -> None:
        target = os.path.join(ctx.cdir, "rootfs")
        ctx.host.makedirs(target)
        rec.rootfs = {"target": target, "mode": None}
        ctx.host.save(ctx.cdir, rec)

        def log(m: str) -> None:
            ctx.log("warning" if "chown" in m else "info", m)

        def note(r: RootfsRecord) -> None:
            rec.rootfs = r
            ctx.host.save(ctx.cdir, rec)

        note(ctx.host.prepare_rootfs(_src_rootfs(ctx, work.spec), target, ctx.cdir, work.uid, work.gid, work.size,
                                     ctx.shift_mode, log, note))

    def undo(self, ctx: Context, rec: Record) -> None:
        if not rec.rootfs:
            return
        if rec.rootfs.get("mode"):
            ctx.host.teardown_rootfs(rec.rootfs)
        else:
            ctx.host.detach_all(rec.rootfs["target"])


class NamespaceMounts(Step):
    """sysfs (and mqueue) for network (and ipc) namespaces the spec joins by path, mounted by
    us on the host: runc, inside the new user namespace, may not."""

    name = "namespace mounts"

    def do(self, ctx: Context, rec: Record, work: Work) -> None:
        spec = work.spec
        joined = {ns["type"]: ns["path"] for ns in spec.get("linux", {}).get("namespaces", []) if ns.get("path")}
        dests = {posixpath.normpath(m.get("destination", "")) for m in spec.get("mounts", [])}
        wanted = [("network", "/sys", "ns-sysfs")] + ([("ipc", "/dev/mqueue", "ns-mqueue")]
                                                      if "/dev/mqueue" in dests else [])
        for kind, dest, name in wanted:
            if kind not in joined:
                continue
            target = os.path.join(ctx.cdir, name)
            ctx.host.makedirs(target)
            rec.ns_mounts.append(target)
            ctx.host.save(ctx.cdir, rec)
            try:
                ctx.host.ns_mount(kind, joined[kind], target)
            except OSError as e:
                raise SysboxError(f"linux.namespaces: {kind} namespace {joined[kind]}: {e.strerror}") from None
            work.ns_mounts[dest] = target

    def undo(self, ctx: Context, rec: Record) -> None:
        _each(rec.ns_mounts, ctx.host.detach_all)


class JoinedSysctls(Step):
    """The sysctls of namespaces the spec joins by path, written from the host side."""

    name = "joined sysctls"

    def do(self, ctx: Context, rec: Record, work: Work) -> None:
        from sysbox.runc.transform import sysctl

        work.spec, taken = sysctl.split_joined(work.spec)
        for kind, path, knob, value in taken:
            code = ctx.host.write_sysctl(kind, path, knob, value)
            if code:
                raise SysboxError(f"linux.sysctl.{knob}: {os.strerror(code)} (writing {value!r} in the {kind} "
                                  f"namespace {path})")


class Devices(Step):
    """linux.devices: nodes on a tmpfs of ours (see sysbox/linux/devnodes.py), bound in by runc."""

    name = "devices"

    def do(self, ctx: Context, rec: Record, work: Work) -> None:
        if not work.devices:
            return
        from sysbox.runc import state

        store = os.path.join(ctx.cdir, state.DEVICES_DIR)
        rec.devices = store
        ctx.host.save(ctx.cdir, rec)
        ctx.host.mount_device_store(store)
        for i, d in enumerate(work.devices):
            node = os.path.join(store, str(i))
            try:
                ctx.host.make_device(node, d["kind"], d["major"], d["minor"], d["mode"], work.uid + d["uid"],
                                     work.gid + d["gid"])
            except OSError as e:
                raise SysboxError(f"linux.devices[{i}]: {d['path']} ({d['kind']} {d['major']}:{d['minor']}): "
                                  f"{e.strerror}") from None
            work.nodes[d["path"]] = node

    def undo(self, ctx: Context, rec: Record) -> None:
        if rec.devices:
            ctx.host.detach_all(rec.devices)


class Transform(Step):
    """The system container's spec: pure functions of the spec and the facts gathered so far."""

    name = "transform"

    def do(self, ctx: Context, rec: Record, work: Work) -> None:
        from sysbox.runc import fsnodes, transform

        cap_last_cap, oom_floor = ctx.host.kernel_facts()
        tctx = transform.Context(uid=work.uid, gid=work.gid, size=work.size, bundle=ctx.bundle, bundle_copy=ctx.cdir,
                                 ns_mounts=work.ns_mounts, cap_last_cap=cap_last_cap,
                                 special_dirs=work.special_dirs, oom_floor=oom_floor,
                                 honor_caps=work.honor_caps,
                                 fs_nodes=fsnodes.spec_mounts(work.fs["mountpoint"]) if work.fs else [],
                                 trap_socket=work.fs["seccomp_socket"] if work.fs else None)
        new = transform.apply(work.spec, tctx)
        new["root"]["path"] = os.path.join(ctx.cdir, "rootfs")
        if work.nodes:
            from sysbox.runc.transform import devices

            new = devices.bind_nodes(new, work.nodes)
        work.new = new


class Binds(Step):
    """Bind sources replaced by idmapped clones (binds.py), each recorded before it is made."""

    name = "binds"

    def do(self, ctx: Context, rec: Record, work: Work) -> None:
        from sysbox.runc import state

        ours = (os.path.join(ctx.cdir, state.DEVICES_DIR, ""), *((work.fs["mountpoint"] + "/",) if work.fs else ()))

        def record(point: str) -> None:
            rec.binds.append(point)
            ctx.host.save(ctx.cdir, rec)

        ctx.host.apply_binds(work.new, os.path.join(ctx.cdir, "binds"), work.uid, work.gid, work.size, ours,
                             lambda m: ctx.log("warning", m), record)

    def undo(self, ctx: Context, rec: Record) -> None:
        if rec.binds:
            ctx.host.teardown_binds(rec.binds)


class Bundle(Step):
    """The rewritten config.json runc reads, and the marks later commands read (kill, exec)."""

    name = "bundle"

    def do(self, ctx: Context, rec: Record, work: Work) -> None:
        from sysbox.runc import execns, state
        from sysbox.runc.transform import mounts

        ctx.host.write_private(os.path.join(ctx.cdir, "config.json"), json.dumps(work.new))
        marks = {state.SYSTEMD_MARK: mounts.is_systemd(work.spec),
                 state.HONOR_CAPS_MARK: work.honor_caps}  # exec'd processes follow it (execproc.py)
        for mark, wanted in marks.items():
            if wanted:
                ctx.host.write_private(os.path.join(ctx.cdir, mark), "")
        joined = execns.joined_kinds(work.spec)
        if joined:  # exec joins these itself (runc 1.1 cannot)
            ctx.host.write_private(os.path.join(ctx.cdir, state.JOINED_NS_MARK), " ".join(joined))


class RuncCreate(Step):
    name = "runc create"

    def do(self, ctx: Context, rec: Record, work: Work) -> None:
        rec.runc_created = True
        ctx.host.save(ctx.cdir, rec)
        rc = ctx.host.runc(ctx.runc_create_argv())
        if rc != 0:
            raise RuncFailed(rc)
        ctx.host.restore_bundle(ctx.runc_root, rec.id, ctx.cdir, ctx.bundle)
        rec.pid = ctx.host.read_pid(ctx.pid_file)
        ctx.host.save(ctx.cdir, rec)

    def undo(self, ctx: Context, rec: Record) -> None:
        """delete runs runc's delete itself first (with the caller's flags); this one is for a
        create that failed after runc made the container."""
        if rec.runc_created and ctx.host.runc_has(ctx.runc_root, rec.id):
            ctx.host.runc([ctx.runtime, "--root", ctx.runc_root, "delete", "--force", rec.id], quiet=True)


class Cgroups(Step):
    """The container's cgroups handed to its root (runc removes them at delete)."""

    name = "cgroups"

    def do(self, ctx: Context, rec: Record, work: Work) -> None:
        assert rec.pid is not None
        rec.cgroups = ctx.host.delegate_cgroups(rec.pid, work.uid, work.gid)
        ctx.host.save(ctx.cdir, rec)


class FsMount(Step):
    """The container's own sysbox-fs connection, mounted before the spec binds its nodes."""

    name = "sysbox-fs mount"

    def do(self, ctx: Context, rec: Record, work: Work) -> None:
        if not work.fs:
            return
        rec.fs = work.fs
        ctx.host.save(ctx.cdir, rec)
        info = ctx.host.fs(work.fs["socket"], "prepare", id=rec.id, uid=work.uid, gid=work.gid)
        work.fs = rec.fs = {**work.fs, "mountpoint": info["mountpoint"]}
        ctx.host.save(ctx.cdir, rec)

    def undo(self, ctx: Context, rec: Record) -> None:
        if not rec.fs:
            return
        from sysbox.ipc import IPCError

        try:  # short: a frozen sysbox-fs must not hold up delete (its own sweep drops the entry later)
            ctx.host.fs(rec.fs["socket"], "unregister", timeout=3, id=rec.id)
        except IPCError as e:
            ctx.log("warning", f"could not unregister {rec.id} from sysbox-fs: {e}")


class FsAttach(Step):
    """Registration with sysbox-fs, and its nodes runc cannot mount (/proc/sys).  Undone with
    FsMount (unregistering ends the connection too)."""

    name = "sysbox-fs attach"

    def do(self, ctx: Context, rec: Record, work: Work) -> None:
        if not work.fs:
            return
        assert rec.pid is not None
        from sysbox.runc import fsnodes

        ctx.host.fs(work.fs["socket"], "register",
                    **fsnodes.register_args(rec.id, rec.pid, work.uid, work.gid, work.size, work.new, work.fs))
        ctx.host.fs_attach_late(work.fs["mountpoint"], rec.pid)


class MgrUpdate(Step):
    name = "manager update"

    def do(self, ctx: Context, rec: Record, work: Work) -> None:
        if rec.mgr_socket:
            assert rec.pid is not None
            ctx.host.mgr(rec.mgr_socket, "update", id=rec.id, pid=rec.pid, state="created")


STEPS: tuple[Step, ...] = (StateDir(), Register(), Rootfs(), NamespaceMounts(), JoinedSysctls(), Devices(),
                           FsMount(), Transform(), Binds(), Bundle(), RuncCreate(), Cgroups(), FsAttach(), MgrUpdate())


def _each(paths: list[str], undo: Any) -> None:
    errors = []
    for p in paths:
        try:
            undo(p)
        except Exception as e:  # noqa: BLE001 - the others still run; the first is raised
            errors.append(e)
    if errors:
        raise errors[0]


def _timer(ctx: Context) -> Any:
    """Call a step; with --debug, log how long it took (where a slow create spends its time)."""
    if not ctx.globals.get("debug"):
        return lambda name, fn, *args: fn(*args)
    import time

    def timed(name: str, fn: Any, *args: Any) -> None:
        t0 = time.perf_counter()
        try:
            fn(*args)
        finally:
            ctx.log("debug", f"step {name} of {args[1].id}: {(time.perf_counter() - t0) * 1000:.1f} ms")

    return timed


def do_all(ctx: Context, rec: Record, work: Work, steps: tuple[Step, ...] = STEPS) -> None:
    """Run the steps in order; on any failure, undo everything the record lists and re-raise.
    An undo that fails too is logged: the state dir stays, and the next create or delete of
    this id finishes the undo from the record."""
    timed = _timer(ctx)
    try:
        for step in steps:
            timed(step.name, step.do, ctx, rec, work)
    except BaseException:
        try:
            undo_all(ctx, rec, steps)
        except Exception as e:  # noqa: BLE001 - the create's own error is the one to report
            ctx.log("warning", f"undoing the failed create of {rec.id}: {e}")
        raise


def undo_all(ctx: Context, rec: Record, steps: tuple[Step, ...] = STEPS) -> None:
    """Undo the record, last step first.  A failing undo does not stop the others (the manager
    is told even if an unmount failed), but the state dir, which holds the record, is kept so
    the undo can be finished; the first error is raised."""
    errors: list[Exception] = []
    timed = _timer(ctx)
    for step in reversed(steps):
        if isinstance(step, StateDir) and errors:
            break
        try:
            timed("undo " + step.name, step.undo, ctx, rec)
        except Exception as e:  # noqa: BLE001 - reported after the remaining steps ran
            errors.append(e)
    if errors:
        raise errors[0]
