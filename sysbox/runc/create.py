"""`create`: turn the bundle into a system container, then let runc create it.

Order matters for hygiene: everything that can refuse the spec runs before anything is
allocated; each side effect is recorded in meta.json before the next one starts; any failure
undoes what the record lists (see delete.cleanup), so a failed create leaves nothing behind.
"""

from __future__ import annotations

import json
import os
import posixpath
import subprocess

from sysbox.typing_lite import TYPE_CHECKING

if TYPE_CHECKING:
    from typing import Any

from sysbox.errors import SysboxError
from sysbox.oci import spec as oci_spec
from sysbox.runc import state
from sysbox.runc.cli import Invocation
from sysbox.runc.log import log

_CREATE_FLAGS = ("console-socket", "pid-file", "no-pivot", "no-new-keyring", "preserve-fds")
KEEP_MARK = "/io.containerd.runtime.v2.task/"


def bundle_dir(inv: Invocation) -> str:
    bundle = inv.flags.get("bundle")
    return os.path.abspath(bundle if isinstance(bundle, str) and bundle else os.getcwd())


def mgr_socket(inv: Invocation) -> str:
    from sysbox.mgr.protocol import DEFAULT_SOCKET
    from sysbox.runc import settings

    return settings.get(inv.globals, "mgr-socket") or DEFAULT_SOCKET


def shift_mode(inv: Invocation) -> str:
    from sysbox.runc import settings

    mode = settings.get(inv.globals, "shift-mode") or "auto"
    if mode not in ("auto", "idmap", "chown"):
        raise SysboxError(f"--shift-mode: {mode!r} is not one of auto, idmap, chown")
    return mode


def pid_file(inv: Invocation, cdir: str) -> str:
    """Where runc writes the init pid: the caller's --pid-file, or one in our state dir.  Reading
    it saves a `runc state` call (~7 ms) on every create."""
    given = inv.flags.get("pid-file")
    return os.path.abspath(given) if isinstance(given, str) and given else os.path.join(cdir, "init.pid")


def lower_create_args(inv: Invocation, bundle: str) -> list[str]:
    """runc's create arguments: the caller's flags, with our transformed bundle and pid file."""
    args: list[str] = []
    for name in _CREATE_FLAGS:
        value = inv.flags.get(name)
        if name == "pid-file":
            value = pid_file(inv, bundle)
        if value is True:
            args.append(f"--{name}")
        elif isinstance(value, str):
            args += [f"--{name}", value]
    return args + ["--bundle", bundle, str(inv.container_id)]


def _validate_in_mgr(socket: str, spec: dict[str, Any]) -> None:
    """Schema validation by the manager: same validator, same messages, no import here."""
    from sysbox.ipc import IPCError
    from sysbox.mgr.client import Client

    try:
        with Client(socket) as c:
            c.call("validate", spec=spec)
    except IPCError as e:
        if e.code == "invalid-spec":
            raise oci_spec.SpecError(str(e)) from None
        raise


def _joined_namespace_mounts(spec: dict[str, Any], cdir: str, meta: dict[str, Any]) -> dict[str, str]:
    """sysfs (and mqueue) for network (and ipc) namespaces the spec joins by path, mounted by
    us on the host; each is recorded in meta before the next, for cleanup."""
    joined = {ns["type"]: ns["path"] for ns in spec.get("linux", {}).get("namespaces", []) if ns.get("path")}
    dests = {posixpath.normpath(m.get("destination", "")) for m in spec.get("mounts", [])}
    wanted = [("network", "/sys", "ns-sysfs")]
    if "/dev/mqueue" in dests:
        wanted.append(("ipc", "/dev/mqueue", "ns-mqueue"))
    out: dict[str, str] = {}
    for kind, dest, name in wanted:
        if kind not in joined:
            continue
        from sysbox.linux import nsmount

        target = os.path.join(cdir, name)
        os.makedirs(target, exist_ok=True)
        meta["ns_mounts"].append(target)
        state.save_meta(cdir, meta)
        try:
            nsmount.mount_for(kind, joined[kind], target)
        except OSError as e:
            raise SysboxError(f"linux.namespaces: {kind} namespace {joined[kind]}: {e.strerror}") from None
        out[dest] = target
    return out


def _joined_sysctls(spec: dict[str, Any]) -> dict[str, Any]:
    """Write the sysctls of namespaces the spec joins by path on the host side (runc, inside the
    new user namespace, may not); returns the spec without them."""
    from sysbox.linux import nsmount
    from sysbox.runc.transform import sysctl

    spec, taken = sysctl.split_joined(spec)
    for kind, path, knob, value in taken:
        code = nsmount.write_sysctl(kind, path, knob, value)
        if code:
            raise SysboxError(f"linux.sysctl.{knob}: {os.strerror(code)} (writing {value!r} in the {kind} "
                              f"namespace {path})")
    return spec


def _check_pool(m: dict[str, int]) -> None:
    """Without a manager, a spec's own mapping must still lie inside the sysbox entries of
    /etc/subuid and /etc/subgid: ids outside them are host users'."""
    from sysbox import subid

    for path, key, field in ((subid.SUBUID, "uid", "uidMappings"), (subid.SUBGID, "gid", "gidMappings")):
        ranges = subid.read_ranges(path)
        if not any(start <= m[key] and m[key] + m["size"] <= start + count for start, count in ranges):
            raise SysboxError(f"linux.{field}: host ids {m[key]}-{m[key] + m['size'] - 1} are not inside the "
                              f"{subid.USER} entry of {path}")


def _special_dir_kinds(spec: dict[str, Any]) -> list[str]:
    from sysbox.mgr.protocol import SPECIAL_DIRS

    mounted = {os.path.normpath(m["destination"]) for m in spec.get("mounts", [])}
    return sorted(k for k, dest in SPECIAL_DIRS.items() if dest not in mounted)


def create(inv: Invocation, runtime: str) -> int:  # noqa: C901 - to become a list of undoable steps (issue 17)
    """Run the whole create; returns runc's exit status (non-zero means nothing is left)."""
    from sysbox.runc import rootfs, settings, transform
    from sysbox.runc.delete import cleanup
    from sysbox.runc.transform import caps, namespaces

    bundle = bundle_dir(inv)
    use_mgr = not inv.globals.get("no-sysbox-mgr")
    spec = oci_spec.load_bundle(bundle, (lambda s: _validate_in_mgr(mgr_socket(inv), s)) if use_mgr else None)
    transform.check(spec)
    mode = shift_mode(inv)
    cid = str(inv.container_id)
    if state.runc_has(inv.globals, cid):
        raise SysboxError(f"container with id exists: {cid}")
    cdir = state.container_dir(inv.globals, cid)
    if os.path.exists(cdir):  # left by a create or delete that was killed: finish undoing it
        cleanup(inv.globals, cdir, state.load_meta(cdir) or {"id": cid})
    requested = namespaces.requested_mappings(spec)
    if not use_mgr and requested is None:
        raise SysboxError("linux.uidMappings: required with --no-sysbox-mgr (no manager to allocate ids)")
    if not use_mgr:
        assert requested is not None  # refused just above
        _check_pool(requested)
    wanted_devices: list[dict[str, Any]] = []
    if spec.get("linux", {}).get("devices"):  # refused before anything is made
        from sysbox.runc.transform import devices as device_specs

        # the manager's ranges are MIN_SIZE long; a spec's own mapping says its size
        wanted_devices = device_specs.wanted(spec, (requested or {}).get("size", namespaces.MIN_SIZE))
    meta: dict[str, Any] = {"id": cid, "bundle": bundle, "mgr_socket": mgr_socket(inv) if use_mgr else None,
                            # containerd (Docker) runs `delete` at every stop: keep the id range and
                            # special dirs for a restart; the manager drops them with the rootfs.
                            "keep": KEEP_MARK in bundle}
    from sysbox.runc import fsnodes

    fs = fsnodes.connect(inv)
    from sysbox.runc.transform import seccomp

    seccomp.check_listener(spec, bool(fs))
    created = False
    try:
        state.makedirs(cdir)
        state.save_meta(cdir, meta)
        src_rootfs = oci_spec.rootfs_path(bundle, spec)
        if use_mgr:
            from sysbox.mgr.client import Client

            args: dict[str, Any] = {"id": cid, "rootfs": os.path.realpath(src_rootfs),
                                    "special_dirs": _special_dir_kinds(spec),
                                    "runtime_root": state.runc_root(inv.globals)}
            if requested:
                args["mappings"] = requested
            if meta["keep"]:  # kept from the start: runc's delete and our unregister are not atomic
                args["keep"] = True
            with Client(meta["mgr_socket"]) as client:
                reg = client.call("register", **args)
            meta["registered"] = True
            state.save_meta(cdir, meta)
        else:
            reg = {**requested, "special_dirs": []}  # type: ignore[dict-item]
        uid, gid, size = reg["uid"], reg["gid"], reg["size"]
        target = os.path.join(cdir, "rootfs")
        os.makedirs(target, exist_ok=True)
        meta["rootfs"] = {"target": target, "mode": None}
        state.save_meta(cdir, meta)
        meta["rootfs"] = rootfs.prepare(src_rootfs, target, cdir, uid, gid, size, mode,
                                        log=lambda m: log(inv.globals, "warning" if "chown" in m else "info", m))
        state.save_meta(cdir, meta)

        meta["ns_mounts"] = []
        ns_mounts = _joined_namespace_mounts(spec, cdir, meta)
        spec = _joined_sysctls(spec)
        nodes: dict[str, str] = {}
        if wanted_devices:
            from sysbox.runc import devices

            nodes = devices.make(wanted_devices, cdir, meta, uid, gid)
        ctx = transform.Context(uid=uid, gid=gid, size=size, rootfs=target, bundle=bundle, ns_mounts=ns_mounts,
                                cap_last_cap=caps.host_cap_last_cap(), special_dirs=reg["special_dirs"],
                                oom_floor=caps.host_oom_floor(),
                                honor_caps=caps.honored(spec, settings.get(inv.globals, "honor-caps")),
                                fs_nodes=fsnodes.spec_mounts(fs["mountpoint"]) if fs else [],
                                trap_socket=fs["seccomp_socket"] if fs else None)
        new = transform.apply(spec, ctx)
        new["root"]["path"] = target
        if nodes:
            new = device_specs.bind_nodes(new, nodes)
        from sysbox.runc import binds

        meta["binds"] = []
        try:
            ours = (os.path.join(cdir, state.DEVICES_DIR, ""), *((fs["mountpoint"] + "/",) if fs else ()))
            binds.apply(new, os.path.join(cdir, "binds"), uid, gid, size, ours,
                        lambda m: log(inv.globals, "warning", m), meta["binds"])
        finally:
            state.save_meta(cdir, meta)
        state.write_private(os.path.join(cdir, "config.json"), json.dumps(new))
        if transform.mounts.is_systemd(spec):
            state.write_private(os.path.join(cdir, state.SYSTEMD_MARK), "")
        if ctx.honor_caps:  # exec'd processes follow the same rule (execproc.py)
            state.write_private(os.path.join(cdir, state.HONOR_CAPS_MARK), "")
        from sysbox.runc import execns

        joined = execns.joined_kinds(spec)
        if joined:  # exec joins these itself (runc 1.1 cannot)
            state.write_private(os.path.join(cdir, state.JOINED_NS_MARK), " ".join(joined))

        rc = subprocess.call([runtime, *inv.lower_globals(), "create", *lower_create_args(inv, cdir)])
        if rc != 0:
            cleanup(inv.globals, cdir, meta)
            return rc
        created = True
        state.restore_bundle(inv.globals, cid, cdir, bundle)
        with open(pid_file(inv, cdir)) as f:
            pid = int(f.read().strip())
        meta["pid"] = pid
        from sysbox.linux import cgroups

        meta["cgroups"] = cgroups.delegate(pid, uid, gid)
        state.save_meta(cdir, meta)
        if fs:
            meta["fs"] = fs
            state.save_meta(cdir, meta)
            fsnodes.register(fs, cid, pid, uid, gid, size, new)
            fsnodes.attach_late(fs["mountpoint"], pid)
        if use_mgr:
            with Client(meta["mgr_socket"]) as client:
                client.call("update", id=cid, pid=pid, state="created")
        return 0
    except BaseException:
        if created:
            subprocess.call([runtime, "--root", state.runc_root(inv.globals), "delete", "--force", cid],
                            stderr=subprocess.DEVNULL)
        cleanup(inv.globals, cdir, meta)
        raise
