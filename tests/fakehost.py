"""A recording stand-in for sysbox/runc/host.py: what create and delete would do to the host.

It keeps the set of things that would exist on a real host (mounts, registrations, runc's
container, the state dir) so a test can check that every path through create and delete
leaves none behind, and it can fail any call by name, as the kernel or a daemon would.
"""

from __future__ import annotations

import json
import os
from typing import Any

from sysbox.ipc import IPCError
from sysbox.runc.host import Host

FS_INFO = {"mountpoint": "/run/fake-fs/mnt", "seccomp_socket": "/run/fake-fs/seccomp.sock", "instance": "i1"}


class Injected(OSError):
    def __init__(self, name: str) -> None:
        super().__init__(5, f"injected failure of {name}")


class FakeHost(Host):
    def __init__(self, fail: str | None = None, runc_rc: int = 0, fs_socket: str | None = None,
                 live: set[str] | None = None, saved: dict[str, Any] | None = None) -> None:
        self.fail = fail  # the name of the call that fails (raises Injected)
        self.runc_rc = runc_rc  # the status of `runc create`
        self.fs_socket = fs_socket  # exists() is true for it: sysbox-fs "running"
        self.live: set[str] = set(live or ())  # what would exist on the host
        self.calls: list[str] = []
        self.saved: list[dict[str, Any]] = [saved] if saved else []  # every record written, in order
        self.points: list[tuple[str, frozenset[str], dict[str, Any] | None]] = []  # after each call
        self.files: dict[str, str] = {}

    def _call(self, name: str) -> None:
        self.calls.append(name)
        if name == self.fail:
            raise Injected(name)

    def _done(self, name: str) -> None:
        self.points.append((name, frozenset(self.live), self.saved[-1] if self.saved else None))

    # -- the state dir
    def makedirs(self, path: str) -> None:
        self._call("makedirs")
        self.live.add(f"dir:{path}")
        self._done("makedirs")

    def remove_dir(self, path: str) -> None:
        self._call("remove_dir")
        mounted = [x for x in self.live if x.startswith("mount:" + path + "/")]
        assert not mounted, f"removing {path} with {mounted} still mounted"
        self.live = {x for x in self.live if not (x == f"dir:{path}" or x.startswith(f"dir:{path}/"))}
        self.files = {p: t for p, t in self.files.items() if not p.startswith(path + "/")}
        self._done("remove_dir")

    def exists(self, path: str) -> bool:
        return f"dir:{path}" in self.live or path == self.fs_socket

    def save(self, cdir: str, rec: Any) -> None:
        self._call("save")
        assert f"dir:{cdir}" in self.live, "record saved before its dir exists"
        self.saved.append(json.loads(json.dumps(rec.to_dict())))
        self._done("save")

    def load(self, cdir: str) -> Any:
        from sysbox.runc.record import Record

        return Record.from_dict(self.saved[-1]) if self.saved and f"dir:{cdir}" in self.live else None

    def write_private(self, path: str, text: str) -> None:
        self._call("write_private")
        self.files[path] = text

    def read_pid(self, path: str) -> int:
        self._call("read_pid")
        return 4242

    def subid_ranges(self, path: str) -> list[tuple[int, int]]:
        return [(100000, 65536 * 8)]

    def kernel_facts(self) -> tuple[int, int | None]:
        return 40, None

    # -- daemons
    def mgr(self, socket: str, method: str, **args: Any) -> dict[str, Any]:
        self._call(f"mgr.{method}")
        cid = args.get("id")
        if method == "register":
            self.live.add(f"mgr:{cid}")
            self._done("mgr.register")
            return {"uid": 165536, "gid": 165536, "size": 65536, "special_dirs": []}
        if method == "unregister":
            if f"mgr:{cid}" not in self.live:
                raise IPCError("not-found", f"no container {cid}")
            self.live.discard(f"mgr:{cid}")
            self._done("mgr.unregister")
        return {}

    def fs(self, socket: str, method: str, timeout: float | None = None, **args: Any) -> dict[str, Any]:
        self._call(f"fs.{method}")
        if method == "ping":
            return dict(FS_INFO)
        if method == "prepare":
            self.live.add(f"fs:{args['id']}")
            self._done("fs.prepare")
            return {"mountpoint": f"{FS_INFO['mountpoint']}/{args['id']}"}
        if method == "register":
            self.live.add(f"fs:{args['id']}")
            self._done("fs.register")
        if method == "unregister":
            self.live.discard(f"fs:{args['id']}")
        return {}

    def fs_attach_late(self, mountpoint: str, pid: int) -> None:
        self._call("fs_attach_late")

    # -- mounts
    def _mount(self, name: str, path: str) -> None:
        self._call(name)
        self.live.add(f"mount:{path}")
        self._done(name)

    def prepare_rootfs(self, src: str, target: str, cdir: str, uid: int, gid: int, size: int, mode: str,
                       log: Any, note: Any) -> Any:
        self._mount("prepare_rootfs", target)
        return {"target": target, "mode": "idmap", "rootfs": src, "uid": uid, "gid": gid, "size": size}

    def teardown_rootfs(self, rec: Any) -> None:
        self._call("teardown_rootfs")
        self.live.discard(f"mount:{rec['target']}")

    def detach_all(self, path: str) -> None:
        self._call("detach_all")
        self.live.discard(f"mount:{path}")

    def ns_mount(self, kind: str, ns_path: str, target: str) -> None:
        self._mount("ns_mount", target)

    def write_sysctl(self, kind: str, ns_path: str, knob: str, value: str) -> int:
        self._call("write_sysctl")
        return 0

    def mount_device_store(self, store: str) -> None:
        self._mount("mount_device_store", store)

    def make_device(self, node: str, kind: str, major: int, minor: int, mode: int, uid: int, gid: int) -> None:
        self._call("make_device")

    def apply_binds(self, spec: dict[str, Any], workdir: str, uid: int, gid: int, size: int,
                    skip: tuple[str, ...], log: Any, record: Any) -> None:
        """Two clones, each recorded before it is mounted: a failure is injected after the
        first, as a bind that fails half-way through the list."""
        self.calls.append("apply_binds")
        for i in range(2):
            point = os.path.join(workdir, str(i))
            record(point)
            self.live.add(f"mount:{point}")
            self._done("apply_binds")
            if self.fail == "apply_binds":
                raise Injected("apply_binds")

    def teardown_binds(self, points: list[str]) -> None:
        self._call("teardown_binds")
        for p in points:
            self.live.discard(f"mount:{p}")

    def delegate_cgroups(self, pid: int, uid: int, gid: int) -> list[str]:
        self._call("delegate_cgroups")
        return ["/sys/fs/cgroup/fake"]

    # -- runc
    def runc(self, argv: list[str], quiet: bool = False) -> int:
        command = next(a for a in argv if a in ("create", "start", "delete"))
        self._call(f"runc.{command}")
        if command == "create":
            if self.runc_rc:
                return self.runc_rc
            self.live.add("runc")
            self._done("runc.create")
        elif command == "delete":
            self.live.discard("runc")
        return 0

    def runc_has(self, runc_root: str, cid: str) -> bool:
        return "runc" in self.live

    def restore_bundle(self, runc_root: str, cid: str, copy: str, bundle: str) -> None:
        self._call("restore_bundle")
