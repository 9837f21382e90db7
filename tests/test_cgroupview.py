"""CgroupView's CPU set: read from cgroup files (faked here as plain files), reused briefly."""

from __future__ import annotations

import pytest

from sysbox.fs import cgroupview
from sysbox.fs.cgroupview import CgroupView


@pytest.fixture
def v1(tmp_path):
    (tmp_path / "cpuset").mkdir()
    (tmp_path / "cpu").mkdir()
    (tmp_path / "cpuset" / "cpuset.effective_cpus").write_text("0-3\n")
    (tmp_path / "cpu" / "cpu.cfs_quota_us").write_text("-1\n")
    (tmp_path / "cpu" / "cpu.cfs_period_us").write_text("100000\n")
    return tmp_path


def test_cpuset_cut_to_quota(v1):
    view = CgroupView({"cpuset": str(v1 / "cpuset"), "cpu": str(v1 / "cpu")})
    assert view.cpus([0, 1, 2, 3]) == [0, 1, 2, 3]
    (v1 / "cpu" / "cpu.cfs_quota_us").write_text("150000\n")
    view2 = CgroupView({"cpuset": str(v1 / "cpuset"), "cpu": str(v1 / "cpu")})
    assert view2.cpus([0, 1, 2, 3]) == [0, 1]  # 1.5 CPUs rounds up to 2


def test_cpus_reused_within_ttl_then_reread(v1, monkeypatch):
    now = [1000.0]
    monkeypatch.setattr(cgroupview.time, "monotonic", lambda: now[0])
    view = CgroupView({"cpuset": str(v1 / "cpuset"), "cpu": str(v1 / "cpu")})
    assert view.cpus([0, 1, 2, 3]) == [0, 1, 2, 3]
    (v1 / "cpuset" / "cpuset.effective_cpus").write_text("2\n")
    now[0] += cgroupview.CPUS_TTL / 2
    assert view.cpus([0, 1, 2, 3]) == [0, 1, 2, 3]
    assert view.cpus([0, 1]) == [0, 1]  # a different online set is never served from the cache
    now[0] += cgroupview.CPUS_TTL
    assert view.cpus([0, 1, 2, 3]) == [2]


def test_returned_list_is_a_copy(v1):
    view = CgroupView({"cpuset": str(v1 / "cpuset")})
    view.cpus([0, 1, 2, 3]).clear()
    assert view.cpus([0, 1, 2, 3]) == [0, 1, 2, 3]


def test_files_are_reread_through_the_cached_fd(v1):
    view = CgroupView({"cpu": str(v1 / "cpu")})
    assert view.quota() is None
    (v1 / "cpu" / "cpu.cfs_quota_us").write_text("50000\n")  # same inode, new content
    assert view.quota() == (50000, 100000)
    assert len(view._fds) == 2
    view.close()
    assert view._fds == {}


def test_absent_file_is_looked_for_again_after_a_while(tmp_path, monkeypatch):
    now = [50.0]
    monkeypatch.setattr(cgroupview.time, "monotonic", lambda: now[0])
    view = CgroupView({"cpu": str(tmp_path)})
    assert view.quota() is None
    (tmp_path / "cpu.cfs_quota_us").write_text("200000\n")
    (tmp_path / "cpu.cfs_period_us").write_text("100000\n")
    assert view.quota() is None
    now[0] += cgroupview.MISSING_TTL
    assert view.quota() == (200000, 100000)


def test_online_cpus_reread_after_its_ttl(monkeypatch):
    import time

    from sysbox.fs import nodes
    from sysbox.fs.nodes import sys_cpu_online as m

    now = [100.0]
    reads = []
    monkeypatch.setattr(time, "monotonic", lambda: now[0])
    monkeypatch.setattr(nodes, "host_read", lambda path: reads.append(path) or b"0-3\n")
    monkeypatch.setattr(nodes, "_HOST", {})
    assert m.online_cpus() == [0, 1, 2, 3] and m.online_cpus() == [0, 1, 2, 3]
    assert len(reads) == 1
    now[0] += m.ONLINE_TTL
    m.online_cpus()
    assert len(reads) == 2
