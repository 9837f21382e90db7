"""The record of what a create did: meta.json in the container's state dir.

Each create step writes what it is about to do here *before* doing it (steps.py), so that a
failed create, a create killed half-way, and delete all undo exactly what the record lists.
The record outlives the code that wrote it (a package upgrade between a container's create and
its delete), so it carries a version and every older version still loads:

- version 1 (no "version" key; sysbox-py 0.1.0 before the create steps): the same keys, without
  runc_created.  runc_created is then taken as true: its undo asks runc whether the container
  exists, so this costs nothing when it does not.
- version 2: adds "version" and "runc_created".

A record newer than this code is refused with a message naming the file, rather than undone
by guesses.
"""

from __future__ import annotations

import os

from sysbox import jsonfast as json
from sysbox.errors import SysboxError
from sysbox.typing_lite import TYPE_CHECKING

if TYPE_CHECKING:
    from typing import Any, TypedDict

    class RootfsRecord(TypedDict, total=False):
        """rootfs.prepare()'s teardown record; mode None means "target made, nothing mounted yet"."""

        target: str
        mode: str | None  # idmap, overlay, chown
        rootfs: str
        uid: int
        gid: int
        size: int
        point: str  # overlay: the original mount point, and what was done to it
        upper: str | None
        orig_base: str
        orig_data: str
        work: str
        upper_shifted: bool
        orig_unmounted: bool
        point_bound: bool
        layers: str  # overlay: where the idmapped lower layers are attached while it is built

    class FsRecord(TypedDict, total=False):
        """The sysbox-fs instance a container is registered with (fsnodes.connect())."""

        socket: str
        mountpoint: str
        seccomp_socket: str
        instance: str

VERSION = 2
FILE = "meta.json"


class Record:
    """What create did, field by field; None/False/[] mean "not done"."""

    __slots__ = ("binds", "bundle", "cgroups", "devices", "fs", "id", "keep", "mgr_socket", "ns_mounts", "pid",
                 "registered", "rootfs", "runc_created")

    def __init__(self, cid: str, bundle: str = "", mgr_socket: str | None = None, keep: bool = False) -> None:
        self.id = cid
        self.bundle = bundle
        self.mgr_socket = mgr_socket  # the manager it registers with; delete may be called without our flags
        self.keep = keep  # containerd deletes at every stop: keep the id range and special dirs
        self.registered = False  # set before the register call: unregister tolerates "not found"
        self.rootfs: RootfsRecord | None = None
        self.ns_mounts: list[str] = []  # sysfs/mqueue mounted for namespaces joined by path
        self.devices: str | None = None  # the tmpfs holding linux.devices nodes
        self.binds: list[str] = []  # idmapped clones of bind sources
        self.runc_created = False
        self.pid: int | None = None
        self.cgroups: list[str] = []  # delegated to the container (chowned); runc removes them
        self.fs: FsRecord | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"version": VERSION, **{name: getattr(self, name) for name in self.__slots__}}

    @classmethod
    def from_dict(cls, d: dict[str, Any], where: str = FILE) -> Record:
        """A record of any version this code knows, as the current one."""
        version = d.get("version", 1)
        if not isinstance(version, int) or not 1 <= version <= VERSION:
            raise SysboxError(f"{where}: record version {version!r} is not one this sysbox-runc reads "
                              f"(1 to {VERSION}); delete it with the sysbox-runc that created it")
        cid = d.get("id")
        if not isinstance(cid, str) or not cid:
            raise SysboxError(f"{where}: id: missing")
        rec = cls(cid, d.get("bundle") or "", d.get("mgr_socket"), bool(d.get("keep")))
        rec.registered = bool(d.get("registered"))
        rec.rootfs = d.get("rootfs") or None
        rec.ns_mounts = list(d.get("ns_mounts") or [])
        rec.devices = d.get("devices") or None
        rec.binds = list(d.get("binds") or [])
        rec.runc_created = bool(d.get("runc_created", version == 1))
        rec.pid = d.get("pid")
        rec.cgroups = list(d.get("cgroups") or [])
        rec.fs = d.get("fs") or None
        return rec


def path(cdir: str) -> str:
    return os.path.join(cdir, FILE)


def load(cdir: str) -> Record | None:
    """The record in `cdir`, None if there is none (or it was cut short before its first write
    completed, which replace_private makes impossible for records we wrote)."""
    p = path(cdir)
    try:
        with open(p) as f:
            data = json.load(f)
    except (FileNotFoundError, ValueError):
        return None
    if not isinstance(data, dict):
        return None
    return Record.from_dict(data, p)


def save(cdir: str, rec: Record) -> None:
    from sysbox.runc import state

    state.replace_private(path(cdir), json.dumps(rec.to_dict()))
