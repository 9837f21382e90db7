"""`sysbox snapshot`, `restore` and `clone`: copies of a VM's own layer, never of its image.

A VM's state on disk is its upper dir (what it changed over the shared image), so a snapshot
is a copy of that dir (reflinked where the filesystem can), a restore swaps it back in, and a
clone is a new VM whose first layer is a copy of another's.  A running VM's upper holds ids
shifted into its range: copies are shifted back, so every saved layer is 0-based.
"""

from __future__ import annotations

import json
import os
import time
import uuid
from typing import Any

from sysbox.devvm import commands, layer
from sysbox.devvm.commands import Env, check_name
from sysbox.devvm.store import write_json
from sysbox.errors import SysboxError
from sysbox.linux.tree import remove_path


def _layered(env: Env, name: str) -> dict[str, Any]:
    meta = env.store.load(name)
    if not meta.get("layered"):
        raise SysboxError(f"container {name} predates layered VMs (made by an older sysbox run); "
                          "snapshots need a VM made by this one")
    return meta


def _upper(env: Env, meta: dict[str, Any]) -> str:
    return layer.paths(env.store, meta)[1]


def list_(env: Env, name: str) -> list[dict[str, Any]]:
    _layered(env, name)
    top = env.store.snapshot_dir(name)
    rows = []
    for snap in sorted(os.listdir(top)) if os.path.isdir(top) else []:
        try:
            with open(os.path.join(top, snap, "snapshot.json")) as f:
                rows.append(json.load(f))
        except FileNotFoundError:
            continue  # half made, by a command that was killed: `snapshot` again replaces it
    return rows


def snapshot(env: Env, name: str, snap: str) -> None:
    check_name(snap, "SNAPSHOT")
    with env.store.locked():
        meta = _layered(env, name)
        d = env.store.snapshot_dir(name, snap)
        if os.path.exists(os.path.join(d, "snapshot.json")):
            raise SysboxError(f"container {name} already has a snapshot {snap}")
        os.makedirs(env.store.snapshot_dir(name), mode=0o700, exist_ok=True)
        remove_path(d)
        os.mkdir(d, 0o700)
        try:
            running = commands.status(env, meta) in ("running", "paused", "created")
            layer.copy_tree(_upper(env, meta), os.path.join(d, "upper"), meta.get("shifted"))
            write_json(os.path.join(d, "snapshot.json"), {"name": snap, "created": time.time(), "running": running})
        except BaseException:
            remove_path(d)
            raise


def restore(env: Env, name: str, snap: str) -> None:
    with env.store.locked():
        meta = _layered(env, name)
        d = env.store.snapshot_dir(name, snap)
        if not os.path.exists(os.path.join(d, "snapshot.json")):
            raise SysboxError(f"container {name} has no snapshot {snap}")
        if commands.status(env, meta) in ("running", "paused", "created"):
            raise SysboxError(f"container {name} is running: sysbox stop {name} first, then restore")
        commands.stop_quiet(env, meta)
        upper, work = layer.paths(env.store, meta)[1:3]
        new = upper + ".restoring"
        remove_path(new)
        layer.copy_tree(os.path.join(d, "upper"), new)
        old = upper + ".old"
        remove_path(old)
        os.rename(upper, old)
        os.rename(new, upper)
        remove_path(old)
        remove_path(work)  # the old overlay's scratch space: a fresh one for the new upper
        os.mkdir(work, 0o700)


def clone(env: Env, name: str, new: str) -> dict[str, Any]:
    """A stopped copy of `name` called `new`: its own name as hostname, a fresh machine-id and
    ssh host keys, and no published ports (they would clash with the source's)."""
    check_name(new, "NEW")
    from sysbox.linux import inroot

    with env.store.locked():
        src = _layered(env, name)
        if env.store.exists(new):
            raise SysboxError(f"container {new} already exists")
        meta = {k: src.get(k) for k in ("image", "tag", "layered", "volumes", "cmd", "env", "memory",
                                        "cpus", "cpuset", "pids", "restart", "ssh_keys", "ssh_identity")}
        meta.update(name=new, id=uuid.uuid4().hex[:12], ports=[], state="creating", created=time.time(),
                    cloned_from=name)
        env.store.save(meta)
        try:
            layer.create(env.store, meta, upper_from=_upper(env, src), shifted=src.get("shifted"))
            commands.write_bundle(env, meta)
            point = layer.mount(env.store, meta)
            try:
                commands.write_into_layer(point, new, commands.identity_files(new)
                                          + [("/etc/machine-id", b"", 0o644, 0o755)])
                err = inroot.remove_files(point, [f"/etc/ssh/ssh_host_{k}_key{p}" for k in ("rsa", "ecdsa", "ed25519")
                                                  for p in ("", ".pub")])
                if err:
                    raise SysboxError(f"container {new}: removing its ssh host keys: {os.strerror(err)}")
            finally:
                layer.unmount(env.store, meta)
            meta["state"] = "exited"
            env.store.save(meta)
        except BaseException:
            remove_path(env.store.cdir(new))
            raise
    return meta
