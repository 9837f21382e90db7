"""The pure rules behind the hostile-container defences: id pools, mode checks, root.path."""

from __future__ import annotations

import json
import os

import pytest

from sysbox.fs.fuse import allowed
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


class C:  # the two fields allowed() reads
    uid, gid = 1 << 24, 1 << 24


@pytest.mark.parametrize("st,uid,read,write,ok", [
    (Stat(False, 0o444), 1 << 24, True, False, True),                  # emulated, root reads
    (Stat(False, 0o444), (1 << 24) + 1000, True, False, True),         # emulated, uid 1000 reads
    (Stat(False, 0o444), 1 << 24, False, True, False),                 # read-only emulated file
    (Stat(False, 0o644), 1 << 24, False, True, True),                  # root writes its own knob
    (Stat(False, 0o644), (1 << 24) + 1000, False, True, False),        # uid 1000 may not
    (Stat(False, 0o600, uid=0, gid=0), 1 << 24, True, False, False),   # host root-only knob
    (Stat(False, 0o644, uid=0, gid=0), 1 << 24, False, True, False),   # host-owned netns knob
    (Stat(False, 0o644, uid=0, gid=0), 1 << 24, True, False, True),    # ... readable
    (Stat(False, 0o600, uid=1 << 24, gid=1 << 24), 1 << 24, True, True, True),  # own netns 0600
    (Stat(False, 0o600, uid=1 << 24, gid=1 << 24), (1 << 24) + 5, True, False, False),
    (Stat(False, 0o640, uid=0, gid=1 << 24), (1 << 24) + 5, True, False, False),  # gid differs
])
def test_mode_bits_apply_to_the_callers_class(st, uid, read, write, ok):
    gid = uid
    assert allowed(st, C(), uid, gid, read, write) is ok


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
