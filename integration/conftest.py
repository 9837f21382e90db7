"""Fixtures shared by the system tests: real images, real runc, isolated state, leak checks.

Every container a test creates lives under a per-test runc --root, and the fixture's
finalizer force-deletes whatever is left there, even when the test failed.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
import uuid

import pytest

from sysbox import images
from sysbox.oci.bundle import default_spec, write_bundle

VENV_BIN = os.path.dirname(sys.executable)
SYSBOX_RUNC = os.path.join(VENV_BIN, "sysbox-runc")
SYSBOX = os.path.join(VENV_BIN, "sysbox")
CACHE = os.environ.get("SYSBOX_IMAGE_CACHE", images.DEFAULT_CACHE)


def run(cmd: list[str], timeout: float = 60, **kw) -> subprocess.CompletedProcess:
    """Run a command and capture its output through files, not pipes.

    `runc create` and `run -d` pass their stdio to the container, which keeps a pipe open for
    its whole life; files let us wait for the runtime's exit instead of the container's.
    """
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        proc = subprocess.run(cmd, stdin=subprocess.DEVNULL, stdout=out, stderr=err,
                              timeout=timeout, **kw)
        out.seek(0)
        err.seek(0)
        return subprocess.CompletedProcess(cmd, proc.returncode, out.read().decode(errors="replace"),
                                           err.read().decode(errors="replace"))


def mounts() -> set[str]:
    """Mount points of the host mount namespace, for before/after leak checks."""
    with open("/proc/self/mountinfo") as f:
        return {line.split()[4] for line in f}


def cgroup_exists(name: str) -> list[str]:
    """Cgroup directories called `name` directly under any hierarchy root."""
    base = "/sys/fs/cgroup"
    found = []
    for h in os.listdir(base):
        if os.path.isdir(os.path.join(base, h, name)):
            found.append(os.path.join(base, h, name))
    if os.path.isdir(os.path.join(base, name)):
        found.append(os.path.join(base, name))
    return found


def wait_for(fn, timeout: float = 60, every: float = 0.2):
    """fn()'s first truthy value within `timeout` seconds, else its last value."""
    deadline = time.monotonic() + timeout
    value = fn()
    while not value and time.monotonic() < deadline:
        time.sleep(every)
        value = fn()
    return value


def worker_index() -> int:
    name = os.environ.get("PYTEST_XDIST_WORKER", "gw0")
    return int(name[2:]) if name[2:].isdigit() else 0


def device_nodes() -> dict[str, tuple[int, int, int]]:
    """(uid, gid, mode) of every char/block device node under /dev (ptys, which tests open and
    close, left out: they come and go with their owners)."""
    import stat as st_

    out = {}
    for dirpath, dirnames, filenames in os.walk("/dev"):
        if dirpath.startswith(("/dev/pts", "/dev/shm", "/dev/mqueue")):
            dirnames[:] = []
            continue
        for name in filenames:
            path = os.path.join(dirpath, name)
            try:
                s = os.lstat(path)
            except OSError:
                continue
            if st_.S_ISCHR(s.st_mode) or st_.S_ISBLK(s.st_mode):
                out[path] = (s.st_uid, s.st_gid, s.st_mode)
    return out


@pytest.fixture(scope="session", autouse=True)
def host_devices_unchanged():
    """Fails the run if any host device node changed owner or mode while the suite ran: a
    runtime must never re-own a host device (a chown walk, a stdio chown, a bind)."""
    before = device_nodes()
    yield
    after = device_nodes()
    changed = {p: (before[p], after[p]) for p in before.keys() & after.keys() if before[p] != after[p]}
    assert not changed, f"host device nodes changed (uid, gid, mode before -> after): {changed}"


@pytest.fixture(scope="session")
def session_mgr(tmp_path_factory):
    """One real sysbox-mgr per xdist worker, with a pool no other worker's manager shares."""
    from integration.daemons import Mgr

    m = Mgr(str(tmp_path_factory.mktemp("session-mgr")), slots=256, gc_interval=2,
            pool_start=(1 << 24) * (1 + worker_index()))
    m.start()
    yield m
    m.stop()


@pytest.fixture(scope="session")
def session_fs(tmp_path_factory):
    """One real sysbox-fs per xdist worker, with its own FUSE mount."""
    from integration.daemons import Fs

    f = Fs(str(tmp_path_factory.mktemp("session-fs")))
    f.start()
    yield f
    f.stop()
    assert not os.path.ismount(f.mountpoint), "sysbox-fs left its FUSE mount behind"


@pytest.fixture(scope="session")
def sysbox_state(session_mgr):
    """sysbox-runc's state dir for this worker: world-searchable, as root.path must be."""
    path = f"/run/sysbox-test/{os.getpid()}"
    os.makedirs(path, mode=0o711, exist_ok=True)
    os.chmod("/run/sysbox-test", 0o711)
    os.chmod(path, 0o711)
    yield path
    from integration.cleanup import remove_tree

    leftovers = remove_tree(path)  # detaches first: never rm through an idmapped image mount
    assert not leftovers, f"mounts left under {path}: {leftovers}"
    try:  # the last worker out removes the shared parent (others may still be using it)
        os.rmdir("/run/sysbox-test")
    except OSError:
        pass


class Runtime:
    """sysbox-runc wired to this worker's manager and state dir, with a private runc root."""

    def __init__(self, mgr, fs, state_dir: str, root: str) -> None:
        self.mgr, self.fs, self.state_dir, self.root = mgr, fs, state_dir, root

    def argv(self, *args: str) -> list[str]:
        return [SYSBOX_RUNC, "--mgr-socket", self.mgr.socket, "--fs-socket", self.fs.socket,
                "--sysbox-state", self.state_dir, "--root", self.root, *args]

    def __call__(self, *args: str, timeout: float = 60, **kw) -> subprocess.CompletedProcess:
        return run(self.argv(*args), timeout=timeout, **kw)

    def state(self, cid: str) -> dict:
        out = self("state", cid)
        assert out.returncode == 0, out.stderr
        return json.loads(out.stdout)

    def exec_argv(self, cid: str, *cmd: str) -> list[str]:
        return ["runc", "--root", self.root, "exec", cid, *cmd]

    def exec(self, cid: str, *cmd: str, timeout: float = 30) -> subprocess.CompletedProcess:
        return run(self.exec_argv(cid, *cmd), timeout=timeout)

    def registered(self) -> list[str]:
        return [c["id"] for c in self.mgr.call("status")["containers"]]

    def fs_registered(self) -> set[str]:
        return {c["id"] for c in self.fs.call("status")["containers"]}


@pytest.fixture
def rt(session_mgr, session_fs, sysbox_state, tmp_path) -> Runtime:
    """A Runtime whose containers are force-deleted afterwards; then checks nothing leaked."""
    root = str(tmp_path / "runc-root")
    os.makedirs(root)
    r = Runtime(session_mgr, session_fs, sysbox_state, root)
    before = set(r.registered())
    fs_before = r.fs_registered()
    yield r
    for cid in run(["runc", "--root", root, "list", "-q"]).stdout.split():
        r("delete", "--force", cid)
    leaked = set(r.registered()) - before
    for cid in leaked:
        session_mgr.call("unregister", id=cid)
    assert not leaked, f"manager still holds {leaked}"
    fs_left = r.fs_registered() - fs_before
    assert not fs_left, f"sysbox-fs still holds {fs_left}"
    conns = [m for m in mounts() if m.startswith(session_fs.mountpoint + "/")
             and os.path.basename(m) not in fs_before]
    assert not conns, f"sysbox-fs connections left: {conns}"  # a prepare whose create failed included
    from sysbox.runc import state as runc_state

    mine = os.path.dirname(runc_state.container_dir({"root": root, "sysbox-state": sysbox_state}, "x"))
    left = [m for m in mounts() if m.startswith(mine + "/") or m.startswith(str(tmp_path))]
    assert not left, f"mounts left: {left}"


@pytest.fixture(scope="session")
def busybox_rootfs() -> str:
    return images.build("busybox", cache=CACHE)["rootfs"]


@pytest.fixture(scope="session")
def runc_default_spec() -> dict:
    return default_spec()


@pytest.fixture
def runc_root(rt) -> str:
    return rt.root


@pytest.fixture
def make_bundle(tmp_path, busybox_rootfs, runc_default_spec):
    """make_bundle(args, name=...) -> bundle dir using the cached busybox rootfs, read-only."""

    def make(args: list[str], name: str = "bundle", rootfs: str | None = None, **kw) -> str:
        bundle = str(tmp_path / name)
        kw.setdefault("readonly", True)
        write_bundle(bundle, rootfs or busybox_rootfs, args, base=runc_default_spec, **kw)
        return bundle

    return make


@pytest.fixture
def cid() -> str:
    return "t-" + uuid.uuid4().hex[:12]


def state(runtime: str, root: str, cid: str) -> dict:
    out = run([runtime, "--root", root, "state", cid])
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


HELPER_SRC = os.path.join(os.path.dirname(__file__), "helpers", "sysc.c")


@pytest.fixture(scope="session")
def helper_dir(tmp_path_factory) -> str:
    """A directory holding the static `sysc` helper, bound read-only at /home in containers."""
    d = tmp_path_factory.mktemp("sysc")
    out = subprocess.run(["gcc", "-static", "-O2", "-o", str(d / "sysc"), HELPER_SRC], capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    os.chmod(d, 0o755)
    return str(d)
