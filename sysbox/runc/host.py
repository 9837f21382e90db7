"""Every side effect of create and delete, behind one object that unit tests replace.

The steps (steps.py) decide what to do and in which order, and record it; this class does it:
mounts, device nodes, the daemons' requests, runc, files.  Each method is a thin call into
sysbox/linux or a client, so the steps' order and every failure-and-undo path can be tested
with a recording fake (tests/fakehost.py) and no root, while the integration tests run this.
"""

from __future__ import annotations

import os

from sysbox.typing_lite import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

    from sysbox.runc.record import Record, RootfsRecord


FS_RESTART_WAIT = 10.0  # seconds a call waits for a sysbox-fs that is restarting


class Host:
    # -- the state dir and its files
    def makedirs(self, path: str) -> None:
        from sysbox.runc import state

        state.makedirs(path)

    def remove_dir(self, path: str) -> None:
        from sysbox.linux.tree import remove_path

        remove_path(path)

    def save(self, cdir: str, rec: Record) -> None:
        from sysbox.runc import record

        record.save(cdir, rec)

    def load(self, cdir: str) -> Record | None:
        from sysbox.runc import record

        return record.load(cdir)

    def write_private(self, path: str, text: str) -> None:
        from sysbox.runc import state

        state.write_private(path, text)

    def read_pid(self, path: str) -> int:
        with open(path) as f:
            return int(f.read().strip())

    # -- facts read before anything is made
    def subid_ranges(self, path: str) -> list[tuple[int, int]]:
        from sysbox import subid

        return subid.read_ranges(path)

    def kernel_facts(self) -> tuple[int, int | None]:
        """(cap_last_cap, the oom_score_adj floor) for the transform."""
        from sysbox.linux import proc

        return proc.cap_last_cap(), proc.oom_floor()

    # -- the daemons
    def mgr(self, socket: str, method: str, **args: Any) -> dict[str, Any]:
        from sysbox.mgr.client import Client

        with Client(socket) as c:
            return c.call(method, **args)

    def fs(self, socket: str, method: str, timeout: float | None = None, **args: Any) -> dict[str, Any]:
        """A sysbox-fs call.  One that finds no sysbox-fs behind an existing socket (never sent,
        so safe to repeat) is tried again for up to FS_RESTART_WAIT: sysbox-fs restarts in
        about a second, and its holder keeps the containers meanwhile, so a create waits for
        it rather than fails."""
        import time

        from sysbox.fs.client import Client
        from sysbox.ipc import IPCError

        deadline = time.monotonic() + FS_RESTART_WAIT
        while True:
            try:
                with Client(socket, **({"timeout": timeout} if timeout else {})) as c:
                    return c.call(method, **args)
            except IPCError as e:
                if e.code != "unreachable" or time.monotonic() >= deadline or not os.path.exists(socket):
                    raise
            time.sleep(0.05)

    def fs_attach_late(self, mountpoint: str, pid: int) -> None:
        from sysbox.runc import fsnodes

        fsnodes.attach_late(mountpoint, pid)

    def exists(self, path: str) -> bool:
        return os.path.exists(path)

    # -- mounts and nodes
    def prepare_rootfs(self, src: str, target: str, cdir: str, uid: int, gid: int, size: int, mode: str,
                       log: Callable[[str], None], note: Callable[[RootfsRecord], None]) -> RootfsRecord:
        from sysbox.runc import rootfs

        return rootfs.prepare(src, target, cdir, uid, gid, size, mode, log=log,  # type: ignore[return-value]
                              note=note)  # type: ignore[arg-type]

    def teardown_rootfs(self, rec: RootfsRecord) -> None:
        from sysbox.runc import rootfs

        rootfs.teardown(rec)  # type: ignore[arg-type]

    def detach_all(self, path: str) -> None:
        from sysbox.linux.tree import detach_all

        detach_all(path)

    def ns_mount(self, kind: str, ns_path: str, target: str) -> None:
        from sysbox.linux import nsmount

        nsmount.mount_for(kind, ns_path, target)

    def write_sysctl(self, kind: str, ns_path: str, knob: str, value: str) -> int:
        from sysbox.linux import nsmount

        return nsmount.write_sysctl(kind, ns_path, knob, value)

    def mount_device_store(self, store: str) -> None:
        from sysbox.linux import devnodes

        devnodes.mount_store(store)

    def make_device(self, node: str, kind: str, major: int, minor: int, mode: int, uid: int, gid: int) -> None:
        from sysbox.linux import devnodes

        devnodes.make_node(node, kind, major, minor, mode, uid, gid)

    def apply_binds(self, spec: dict[str, Any], workdir: str, uid: int, gid: int, size: int,
                    skip: tuple[str, ...], log: Callable[[str], None], record: Callable[[str], None]) -> None:
        from sysbox.runc import binds

        binds.apply(spec, workdir, uid, gid, size, skip, log, record)

    def teardown_binds(self, points: list[str]) -> None:
        from sysbox.runc import binds

        binds.teardown(points)

    def delegate_cgroups(self, pid: int, uid: int, gid: int) -> list[str]:
        from sysbox.linux import cgroups

        return cgroups.delegate(pid, uid, gid)

    # -- runc
    def runc(self, argv: list[str], quiet: bool = False) -> int:
        """Run the lower runtime and wait: posix_spawn, not subprocess (~5 ms of imports per
        create and delete).  Our own fds are all close-on-exec; what we inherited goes on to runc
        as it would through an exec (runc's --preserve-fds counts on that)."""
        actions = [(os.POSIX_SPAWN_OPEN, 2, "/dev/null", os.O_WRONLY, 0)] if quiet else []
        spawn = os.posix_spawn if os.path.isabs(argv[0]) else os.posix_spawnp
        pid = spawn(argv[0], argv, os.environ, file_actions=actions)
        try:
            _, status = os.waitpid(pid, 0)
        except BaseException:  # interrupted (^C): runc goes too, as with subprocess.call
            os.kill(pid, 9)
            os.waitpid(pid, 0)
            raise
        return os.waitstatus_to_exitcode(status)

    def runc_has(self, runc_root: str, cid: str) -> bool:
        from sysbox.runc import state

        return os.path.exists(state.runc_state_path(runc_root, cid))

    def restore_bundle(self, runc_root: str, cid: str, copy: str, bundle: str) -> None:
        from sysbox.runc import state

        state.restore_bundle(runc_root, cid, copy, bundle)
