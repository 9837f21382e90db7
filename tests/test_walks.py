"""Walks over trees a container controls: iterative, bounded, never following links or mounts.

These run on real tmp directories (no root needed for most): a chain deeper than Python's
recursion limit is exactly what a container can build."""

from __future__ import annotations

import os
import sys

import pytest

from sysbox.linux import shift, tree

DEEP = sys.getrecursionlimit() + 500  # deeper than any recursive walk could go


@pytest.fixture(autouse=True)
def _remove_deep_trees(tmp_path):
    """pytest's own tmp cleanup (shutil.rmtree, recursive in Python 3.11) cannot remove them."""
    yield
    for name in os.listdir(tmp_path):
        tree.remove_path(os.path.join(tmp_path, name))


def chain(top: str, depth: int, leaf: str = "f") -> None:
    fd = os.open(top, os.O_RDONLY | os.O_DIRECTORY)
    try:
        for _ in range(depth):
            os.mkdir("a", dir_fd=fd)
            nfd = os.open("a", os.O_RDONLY | os.O_DIRECTORY, dir_fd=fd)
            os.close(fd)
            fd = nfd
        os.close(os.open(leaf, os.O_CREAT | os.O_WRONLY, 0o644, dir_fd=fd))
    finally:
        os.close(fd)


def test_remove_path_removes_a_chain_deeper_than_the_recursion_limit(tmp_path):
    top = tmp_path / "deep"
    top.mkdir()
    chain(str(top), DEEP)
    (top / "sibling").write_text("x")
    tree.remove_path(str(top))
    assert not top.exists()


def test_remove_path_unlinks_symlinks_without_following(tmp_path):
    keep = tmp_path / "keep"
    keep.mkdir()
    (keep / "precious").write_text("x")
    top = tmp_path / "t"
    (top / "d").mkdir(parents=True)
    os.symlink(keep, top / "d" / "link")
    os.symlink(keep / "precious", top / "file-link")
    tree.remove_path(str(top))
    assert not top.exists() and (keep / "precious").read_text() == "x"


def test_walk_visits_everything_once_with_constant_fds(tmp_path):
    chain(str(tmp_path), 300)
    seen = []
    before = len(os.listdir("/proc/self/fd"))
    most = [0]

    def visit(dir_fd: int, name: str, st: os.stat_result) -> bool:
        seen.append(name)
        most[0] = max(most[0], len(os.listdir("/proc/self/fd")))
        return True

    fd = os.open(tmp_path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        tree.walk_fd(fd, visit)
    finally:
        os.close(fd)
    assert seen.count("a") == 300 and seen.count("f") == 1
    assert most[0] <= before + 4  # one directory fd at a time, whatever the depth


def test_walk_stops_if_the_tree_is_moved_under_it(tmp_path):
    """A container renaming directories while we walk cannot steer the climb back up."""
    (tmp_path / "x" / "y" / "z").mkdir(parents=True)
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "elsewhere" / "victim").write_text("keep")

    def visit(dir_fd: int, name: str, st: os.stat_result) -> bool:
        if name == "z":  # we are inside x/y: move y under another parent
            os.rename(tmp_path / "x" / "y", tmp_path / "elsewhere" / "y")
        return True

    fd = os.open(tmp_path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        with pytest.raises(tree.MovedError):
            tree.walk_fd(fd, visit)
    finally:
        os.close(fd)
    assert (tmp_path / "elsewhere" / "victim").read_text() == "keep"


@pytest.mark.skipif(os.geteuid() != 0, reason="chown needs root")
def test_shift_walks_deep_trees_and_never_touches_device_nodes(tmp_path):
    chain(str(tmp_path), DEEP)
    os.mknod(tmp_path / "null", 0o666 | 0o020000, os.makedev(1, 3))
    n = shift.shift_tree(str(tmp_path), 1 << 24, 1 << 24, 65536)
    assert n == DEEP + 2  # top, the chain, the leaf: the device is skipped
    assert os.lstat(tmp_path / "null").st_uid == 0
    leaf = os.path.join(str(tmp_path), *["a"] * 10)
    assert os.lstat(leaf).st_uid == 1 << 24
    shift.unshift_tree(str(tmp_path), 1 << 24, 1 << 24, 65536)
    assert os.lstat(leaf).st_uid == 0


@pytest.mark.skipif(os.geteuid() != 0, reason="chown needs root")
def test_special_dir_copy_refuses_a_too_deep_image_tree_and_leaves_nothing(tmp_path):
    from sysbox.mgr import specialdirs

    rootfs = tmp_path / "rootfs"
    (rootfs / "var" / "lib" / "docker").mkdir(parents=True)
    chain(str(rootfs / "var" / "lib" / "docker"), specialdirs.MAX_COPY_DEPTH + 5)
    data = tmp_path / "data"
    with pytest.raises(specialdirs.TooDeep):
        specialdirs.ensure(str(data), "docker", "c1", 1 << 24, 1 << 24, 65536, str(rootfs))
    assert os.listdir(data / "docker") == []
    fds = len(os.listdir("/proc/self/fd"))
    # a tree within the bound is copied whole, owners shifted, fds all closed again
    shallow = tmp_path / "rootfs2"
    (shallow / "var" / "lib" / "docker").mkdir(parents=True)
    chain(str(shallow / "var" / "lib" / "docker"), 50)
    path, created = specialdirs.ensure(str(data), "docker", "c2", 1 << 24, 1 << 24, 65536, str(shallow))
    assert created and os.lstat(os.path.join(path, *["a"] * 50, "f")).st_uid == 1 << 24
    assert len(os.listdir("/proc/self/fd")) == fds


def test_cgroup_task_dirs_are_bounded(tmp_path):
    from sysbox.fs.cgroupview import CgroupView

    chain(str(tmp_path), DEEP)
    for i in range(50):
        (tmp_path / f"w{i}").mkdir()
    view = CgroupView({"pids": str(tmp_path)})
    dirs = view.task_dirs(limit=300)
    assert len(dirs) == 300 and dirs[0] == str(tmp_path)
    assert len(view.task_dirs(limit=100000)) == DEEP + 51
