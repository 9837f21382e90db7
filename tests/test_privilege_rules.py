"""The pure rules behind the hostile-container defences: id pools, mode checks, root.path."""

from __future__ import annotations

import json
import os

import pytest

from sysbox.fs.nodes import Stat
from sysbox.mgr.allocator import Pool, outside_pool
from sysbox.oci.spec import SpecError, load_bundle

POOL = Pool(1 << 20, 65536 * 4, 1 << 21, 65536 * 4)


@pytest.mark.parametrize("uid,gid,size,bad", [
    (1 << 20, 1 << 21, 65536, None),
    ((1 << 20) + 3 * 65536, (1 << 21) + 5, 65536, None),
    (1, 1 << 21, 65536, "uid range 1-65536"),
    (1000, 1000, 16 << 20, "uid range"),
    ((1 << 20) + 3 * 65536 + 1, 1 << 21, 65536, "uid range"),
    (1 << 20, 0, 65536, "gid range 0-65535"),
    ((1 << 20) - 1, 1 << 21, 65536, "uid range"),
])
def test_caller_mappings_must_lie_inside_the_pool(uid, gid, size, bad):
    why = outside_pool(POOL, uid, gid, size)
    assert (why is None) if bad is None else (bad in why and "outside the sysbox entry" in why)


ROOT = 1 << 24  # the container's root, as a host id


@pytest.mark.parametrize("st,owner,cached", [
    (Stat(False, 0o444), (ROOT, ROOT), True),                      # emulated: the container's root's
    (Stat(False, 0o644), (ROOT, ROOT), True),                      # an emulated knob it may write
    (Stat(False, 0o600, uid=0, gid=0), (0, 0), False),             # host root-only: never read for it
    (Stat(False, 0o644, uid=0, gid=0), (0, 0), True),              # a host knob, readable by all
    (Stat(False, 0o600, uid=ROOT, gid=ROOT), (ROOT, ROOT), True),  # a knob of its own netns
    (Stat(False, 0o200, uid=ROOT, gid=ROOT), (ROOT, ROOT), False),  # write-only
])
def test_owners_reported_for_the_kernels_permission_checks(st, owner, cached):
    """The kernel checks the modes itself (default_permissions) against the owners reported;
    content is generated ahead (and cached) only for nodes the container may read."""
    from sysbox.fs.fuse import SysboxFS

    fs = SysboxFS(ROOT, ROOT)
    fs.container = object()  # type: ignore[assignment]
    node = fs._node_for("proc/sys/kernel/panic")

    def gen(path, c):
        return b"1\n"
    fs._generate = gen  # type: ignore[method-assign]
    attr = fs._attr(node, st)
    assert (attr.uid, attr.gid) == owner and attr.mode & 0o7777 == st.mode
    assert (attr.timeout > 0) is cached and (node.data is not None) is cached


@pytest.mark.parametrize("root", ["/", "/proc/self/root", "/dev", "/sys/kernel", "../../../../.."])
def test_host_system_trees_are_no_rootfs(tmp_path, root):
    spec = {"ociVersion": "1.0.2", "root": {"path": root}, "process": {"args": ["true"], "cwd": "/"}}
    (tmp_path / "config.json").write_text(json.dumps(spec))
    with pytest.raises(SpecError, match="root.path: .* a host system tree"):
        load_bundle(str(tmp_path), validator=lambda s: None)


def test_an_ordinary_rootfs_is_fine(tmp_path):
    (tmp_path / "rootfs").mkdir()
    spec = {"ociVersion": "1.0.2", "root": {"path": "rootfs"}, "process": {"args": ["true"], "cwd": "/"}}
    (tmp_path / "config.json").write_text(json.dumps(spec))
    assert load_bundle(str(tmp_path), validator=lambda s: None)["root"]["path"] == "rootfs"


def test_state_files_are_written_0600(tmp_path):
    from sysbox.runc import state

    path = tmp_path / "f"
    path.write_text("old")
    os.chmod(path, 0o644)
    state.write_private(str(path), "secret")
    assert path.read_text() == "secret" and os.stat(path).st_mode & 0o777 == 0o600
