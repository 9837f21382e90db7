"""The manager's sqlite table, on a file in tmp_path: what survives a reopen, and the rules of
allocation (no range twice, caller mappings inside the pool and apart from the others)."""

import os
import stat

import pytest

from sysbox.mgr import allocator
from sysbox.mgr.allocator import SLOT, Pool
from sysbox.mgr.store import Store

POOL = Pool(1 << 20, 3 * SLOT, 2 << 20, 3 * SLOT, "/etc/subuid")


@pytest.fixture
def db(tmp_path):
    path = str(tmp_path / "state" / "mgr.db")
    s = Store(path)
    yield s, path
    s.close()


def test_ranges_are_distinct_and_survive_a_reopen(db):
    s, path = db
    a = s.allocate(POOL, "a", "/ra", "/run/runc", ["docker"], (10, 20))
    b = s.allocate(POOL, "b", "/rb", None, [], (None, None), keep=True)
    assert (a.slot, b.slot) == (0, 1) and (a.uid, a.gid, a.size) == (1 << 20, 2 << 20, SLOT)
    s.update("a", pid=1234, state="created")
    s.close()
    again = Store(path)
    try:
        got = {c.id: c for c in again.all()}
        assert got["a"].pid == 1234 and got["a"].state == "created" and got["a"].special_dirs == ["docker"]
        assert got["b"].keep is True and got["b"].runtime_root is None
        assert "pid_start" not in got["a"].public() and got["a"].public()["rootfs"] == "/ra"
    finally:
        again.close()
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(os.path.dirname(path)).st_mode) == 0o700


def test_a_freed_slot_is_reused_and_exhaustion_is_refused(db):
    s, _ = db
    for cid in ("a", "b", "c"):
        s.allocate(POOL, cid, "/r", None, [], (None, None))
    with pytest.raises(allocator.Exhausted):
        s.allocate(POOL, "d", "/r", None, [], (None, None))
    assert s.get("d") is None  # the failed insert left nothing
    s.delete("b")
    assert s.allocate(POOL, "d", "/r", None, [], (None, None)).slot == 1


def test_a_callers_mapping_must_be_inside_the_pool_and_apart(db):
    s, _ = db
    first = s.allocate(POOL, "a", "/r", None, [], (None, None))
    with pytest.raises(allocator.Conflict):
        s.allocate(POOL, "b", "/r", None, [], (None, None), mappings={"uid": first.uid + 5, "gid": 2 << 20,
                                                                      "size": SLOT})
    with pytest.raises(allocator.OutsidePool):
        s.allocate(POOL, "c", "/r", None, [], (None, None), mappings={"uid": 5, "gid": 5, "size": SLOT})
    own = s.allocate(POOL, "d", "/r", None, [], (None, None),
                     mappings={"uid": (1 << 20) + 2 * SLOT, "gid": (2 << 20) + 2 * SLOT, "size": SLOT})
    assert own.slot is None
    assert s.allocate(POOL, "e", "/r", None, [], (None, None)).slot == 1
    with pytest.raises(allocator.Exhausted):  # slot 2's ids are d's own mapping
        s.allocate(POOL, "f", "/r", None, [], (None, None))


def test_reregister_resets_the_run(db):
    s, _ = db
    s.allocate(POOL, "a", "/r", None, ["docker"], (1, 2))
    s.update("a", pid=99, pid_start=7, state="running")
    s.reregister("a", "/new", "/run/x", ["kubelet"], (3, 4), keep=True)
    c = s.get("a")
    assert c is not None
    assert (c.rootfs, c.runtime_root, c.special_dirs, c.client_pid, c.state, c.keep, c.pid) == \
        ("/new", "/run/x", ["kubelet"], 3, "registered", True, None)
