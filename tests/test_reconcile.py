"""Live or vanished, from facts on the host (real pids and files here, no mocks)."""

import os
import subprocess

from sysbox.mgr import reconcile
from sysbox.mgr.store import Container


def _c(**kw) -> Container:
    base = {"id": "c", "slot": 0, "uid": 1 << 20, "gid": 1 << 20, "size": 65536, "rootfs": "/nonexistent/x/rootfs",
            "runtime_root": None}
    return Container(**{**base, **kw})


def test_a_live_init_and_a_recycled_pid():
    me = os.getpid()
    start = reconcile.start_time(me)
    assert reconcile.liveness(_c(pid=me, pid_start=start)) == f"init pid {me} alive"
    assert reconcile.liveness(_c(pid=me, pid_start=start + 1)) is None  # same pid, another process


def test_a_dead_pid():
    p = subprocess.Popen(["sleep", "30"])
    try:
        start = reconcile.start_time(p.pid)
        assert start is not None and reconcile.alive(p.pid, start)
    finally:
        p.kill()
        p.wait()
    assert not reconcile.alive(p.pid, start)  # gone, or the pid reused by a process started later
    assert not reconcile.alive(None, None)


def test_runtime_state_and_a_create_in_progress(tmp_path):
    (tmp_path / "c").mkdir()
    (tmp_path / "c" / "state.json").write_text("{}")
    assert reconcile.liveness(_c(runtime_root=str(tmp_path))) == "runtime state exists"
    me = os.getpid()
    creating = _c(state="registered", client_pid=me, client_start=reconcile.start_time(me))
    assert reconcile.liveness(creating) == f"being created by pid {me}"
    assert reconcile.liveness(_c(state="created", client_pid=me, client_start=reconcile.start_time(me))) is None


def test_kept_while_the_rootfs_parent_exists(tmp_path):
    layer = tmp_path / "layer"
    layer.mkdir()
    assert reconcile.liveness(_c(keep=True, rootfs=str(layer / "merged"))) == "stopped, rootfs's parent still present"
    assert reconcile.liveness(_c(keep=False, rootfs=str(layer / "merged"))) is None
    layer.rmdir()
    assert reconcile.liveness(_c(keep=True, rootfs=str(layer / "merged"))) is None
