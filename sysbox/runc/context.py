"""One context per sysbox-runc call that does system-container work (create, run, delete).

Everything derived from the command line, the environment and the config file is resolved
here, once: the id, runc's root, our state dir, the bundle, the daemons' sockets, the shift
mode, the pid file, the lower runtime and the flags passed down to it.  Steps (steps.py) read
it and never look at the command line again.
"""

from __future__ import annotations

import os

from sysbox.errors import SysboxError
from sysbox.runc import settings, state
from sysbox.typing_lite import TYPE_CHECKING

if TYPE_CHECKING:
    from sysbox.runc.cli import Invocation
    from sysbox.runc.host import Host

_CREATE_FLAGS = ("console-socket", "no-pivot", "no-new-keyring", "preserve-fds")
KEEP_MARK = "/io.containerd.runtime.v2.task/"  # containerd's bundles: deleted at every stop, then restarted
SHIFT_MODES = ("auto", "idmap", "chown")


class Context:
    __slots__ = ("bundle", "cdir", "create_flags", "fs_socket", "globals", "honor_caps", "host", "id",
                 "lower_globals", "mgr_socket", "pid_file", "runc_root", "runtime", "shift_mode")

    def __init__(self, inv: Invocation, runtime: str, host: Host | None = None) -> None:
        from sysbox.fs.protocol import DEFAULT_SOCKET as FS_SOCKET
        from sysbox.mgr.protocol import DEFAULT_SOCKET as MGR_SOCKET

        cid = inv.container_id
        if not cid:
            raise SysboxError(f"{inv.command}: a container id is required")
        g = inv.globals
        self.id: str = cid
        self.globals = g  # for log(): --log, --log-format, --debug
        self.runtime = runtime
        self.lower_globals = inv.lower_globals()
        self.runc_root = state.runc_root(g)
        self.cdir = state.container_dir(g, cid)
        bundle = inv.flags.get("bundle")
        self.bundle = os.path.abspath(bundle if isinstance(bundle, str) and bundle else os.getcwd())
        self.mgr_socket: str | None = None if g.get("no-sysbox-mgr") else settings.get(g, "mgr-socket") or MGR_SOCKET
        self.fs_socket: str | None = None if g.get("no-sysbox-fs") else settings.get(g, "fs-socket") or FS_SOCKET
        self.shift_mode = settings.get(g, "shift-mode") or "auto"
        self.honor_caps = settings.get(g, "honor-caps")
        given = inv.flags.get("pid-file")
        # Reading runc's pid file saves a `runc state` call (~7 ms) on every create.
        self.pid_file = os.path.abspath(given) if isinstance(given, str) and given else os.path.join(self.cdir,
                                                                                                    "init.pid")
        self.create_flags: list[str] = []
        for name in _CREATE_FLAGS:
            value = inv.flags.get(name)
            if value is True:
                self.create_flags.append(f"--{name}")
            elif isinstance(value, str):
                self.create_flags += [f"--{name}", value]
        if host is None:
            from sysbox.runc.host import Host

            host = Host()
        self.host = host

    @property
    def keep(self) -> bool:
        return KEEP_MARK in self.bundle

    def check_shift_mode(self) -> None:
        if self.shift_mode not in SHIFT_MODES:
            raise SysboxError(f"--shift-mode: {self.shift_mode!r} is not one of {', '.join(SHIFT_MODES)}")

    def runc(self, *args: str) -> list[str]:
        """argv of the lower runtime with the caller's global flags (ours removed)."""
        return [self.runtime, *self.lower_globals, *args]

    def runc_create_argv(self) -> list[str]:
        """runc's create: the caller's flags, with our rewritten bundle and our pid file."""
        return self.runc("create", *self.create_flags, "--pid-file", self.pid_file, "--bundle", self.cdir, self.id)

    def log(self, level: str, msg: str) -> None:
        from sysbox.runc.log import log

        log(self.globals, level, msg)
