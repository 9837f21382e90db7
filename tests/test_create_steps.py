"""create's steps and their undo, over a recording fake of the host (fakehost.py, beside this file).

What is checked here, without root: the order of create's side effects; that a failure at
any of them, and a kill at any point, leaves nothing behind once the record is undone; that
delete's reverse walk undoes a whole create; and that records of older versions still load.
The real side effects are the integration tests' (integration/test_faults.py kills real
creates half-way).
"""

from __future__ import annotations

import json
import os
from typing import Any

import pytest

from sysbox.errors import SysboxError
from sysbox.runc import cli, create, delete, record, settings, steps
from sysbox.runc.context import Context
from fakehost import FakeHost

ROOT, STATE, MGR, FS = "/r", "/s", "/m.sock", "/f.sock"
NETNS, IPCNS = "/run/netns/n1", "/run/ipcns/i1"

SPEC: dict[str, Any] = {
    "ociVersion": "1.0.2",
    "root": {"path": "rootfs"},
    "process": {"args": ["/bin/sh"], "cwd": "/", "user": {"uid": 0, "gid": 0}},
    "mounts": [
        {"destination": "/proc", "type": "proc", "source": "proc"},
        {"destination": "/sys", "type": "sysfs", "source": "sysfs"},
        {"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue"},
        {"destination": "/data", "type": "bind", "source": "/srv/data", "options": ["rbind"]},
    ],
    "linux": {
        "namespaces": [{"type": "pid"}, {"type": "mount"}, {"type": "uts"}, {"type": "network", "path": NETNS},
                       {"type": "ipc", "path": IPCNS}],
        "sysctl": {"net.ipv4.ip_forward": "1"},
        "devices": [{"path": "/dev/kvm", "type": "c", "major": 10, "minor": 232}],
    },
}

# create's side effects, in order (the checks' reads first; saves of the record left out)
ORDER = ["mgr.validate", "fs.ping", "makedirs", "mgr.register", "makedirs", "prepare_rootfs", "makedirs", "ns_mount",
         "makedirs", "ns_mount", "write_sysctl", "mount_device_store", "make_device", "fs.prepare", "apply_binds",
         "write_private", "write_private", "runc.create", "restore_bundle", "read_pid", "delegate_cgroups",
         "fs.register", "fs_attach_late", "mgr.update"]
UNDO_ORDER = ["runc.delete", "teardown_binds", "fs.unregister", "detach_all", "detach_all", "detach_all",
              "teardown_rootfs", "mgr.unregister", "remove_dir"]


@pytest.fixture(autouse=True)
def _no_config_file(monkeypatch, tmp_path):
    monkeypatch.setenv("SYSBOX_RUNC_CONFIG", str(tmp_path / "absent.conf"))
    for env in settings.KEYS.values():
        monkeypatch.delenv(env, raising=False)
    monkeypatch.setattr(settings, "_file", None)


@pytest.fixture
def bundle(tmp_path):
    (tmp_path / "rootfs").mkdir()
    (tmp_path / "config.json").write_text(json.dumps(SPEC))
    return str(tmp_path)


def context(bundle: str, host: FakeHost, *extra: str) -> Context:
    inv = cli.parse(["--root", ROOT, "--sysbox-state", STATE, "--mgr-socket", MGR, "--fs-socket", FS, *extra,
                     "create", "--bundle", bundle, "c1"])
    return Context(inv, "/usr/bin/runc", host)


def run_create(ctx: Context) -> record.Record:
    return create.make(ctx, create.check(ctx))


def effects(host: FakeHost) -> list[str]:
    return [c for c in host.calls if c != "save"]


def test_create_runs_the_steps_in_order_and_leaves_a_full_record(bundle):
    host = FakeHost(fs_socket=FS)
    ctx = context(bundle, host)
    rec = run_create(ctx)
    assert effects(host) == ORDER
    assert host.live == {f"dir:{ctx.cdir}", f"dir:{ctx.cdir}/rootfs", f"dir:{ctx.cdir}/ns-sysfs",
                         f"dir:{ctx.cdir}/ns-mqueue", "mgr:c1", "runc", "fs:c1",
                         f"mount:{ctx.cdir}/rootfs", f"mount:{ctx.cdir}/ns-sysfs", f"mount:{ctx.cdir}/ns-mqueue",
                         f"mount:{ctx.cdir}/devices", f"mount:{ctx.cdir}/binds/0", f"mount:{ctx.cdir}/binds/1"}
    assert host.saved[-1] == rec.to_dict()
    assert rec.pid == 4242 and rec.registered and rec.runc_created and rec.fs and rec.fs["socket"] == FS
    assert rec.ns_mounts == [f"{ctx.cdir}/ns-sysfs", f"{ctx.cdir}/ns-mqueue"]
    # what runc was given: our copy of the bundle, with the spec rewritten and the marks
    new = json.loads(host.files[f"{ctx.cdir}/config.json"])
    assert new["root"]["path"] == f"{ctx.cdir}/rootfs"
    assert {"type": "user"} in new["linux"]["namespaces"]
    assert "net.ipv4.ip_forward" not in new["linux"].get("sysctl", {})  # written by the host instead
    assert f"{ctx.cdir}/joined-ns" in host.files


def test_delete_is_the_reverse_walk(bundle):
    host = FakeHost(fs_socket=FS)
    ctx = context(bundle, host)
    run_create(ctx)
    host.calls.clear()
    delete.force(ctx)
    assert effects(host) == ["runc.delete", *(c for c in UNDO_ORDER if c != "runc.delete")]
    assert host.live == set()


def test_a_failed_create_undoes_in_reverse(bundle):
    host = FakeHost(fs_socket=FS, fail="fs_attach_late")
    ctx = context(bundle, host)
    with pytest.raises(OSError, match="injected"):
        run_create(ctx)
    undo = effects(host)[effects(host).index("fs_attach_late") + 1:]
    assert undo == UNDO_ORDER
    assert host.live == set()


FALLIBLE = sorted(set(ORDER) - {"write_private"}) + ["write_private"]


@pytest.mark.parametrize("name", FALLIBLE)
def test_a_failure_anywhere_leaves_nothing(bundle, name):
    host = FakeHost(fs_socket=FS, fail=name)
    ctx = context(bundle, host)
    with pytest.raises((OSError, SysboxError)):
        run_create(ctx)
    assert host.live == set(), f"left after {name} failed"


def test_runc_refusing_leaves_nothing_and_passes_its_status(bundle):
    host = FakeHost(fs_socket=FS, runc_rc=3)
    ctx = context(bundle, host)
    with pytest.raises(steps.RuncFailed) as e:
        run_create(ctx)
    assert e.value.rc == 3
    assert host.live == set()
    assert "runc.delete" not in host.calls  # runc made nothing


def test_a_create_killed_at_any_point_is_finished_by_the_next(bundle):
    """A kill after any side effect leaves the last record saved before it; the next create
    of the id undoes from that record (a delete, once runc has the container: create refuses an
    id runc knows), and nothing is left."""
    first = FakeHost(fs_socket=FS)
    run_create(context(bundle, first))
    assert len(first.points) > 15
    for name, live, saved in first.points:
        host = FakeHost(fs_socket=FS, live=set(live), saved=saved)
        ctx = context(bundle, host)
        if "runc" in live:
            delete.force(ctx)
        else:
            create.check(ctx)  # finds the state dir, undoes from the record
        assert host.live == set(), f"killed after {name} ({saved and sorted(saved)}): left {sorted(host.live)}"
        if saved:
            assert record.Record.from_dict(saved).to_dict() == saved


def test_an_undo_that_fails_keeps_the_record_for_the_next_try(bundle):
    host = FakeHost(fs_socket=FS)
    ctx = context(bundle, host)
    run_create(ctx)
    host.fail = "teardown_binds"
    with pytest.raises(OSError, match="injected failure of teardown_binds"):
        delete.force(ctx)
    assert f"dir:{ctx.cdir}" in host.live and "mgr:c1" not in host.live  # the others still ran
    host.fail = None
    delete.finish(ctx)
    assert host.live == set()


def _map_to(bundle: str, host_id: int) -> None:
    """The bundle's spec with its own id mapping (uids and gids from host_id, 65536 of them)."""
    path = os.path.join(bundle, "config.json")
    with open(path) as f:
        spec = json.load(f)
    for key in ("uidMappings", "gidMappings"):
        spec["linux"][key] = [{"containerID": 0, "hostID": host_id, "size": 65536}]
    with open(path, "w") as f:
        json.dump(spec, f)


def test_without_managers_the_spec_mapping_is_used(bundle):
    _map_to(bundle, 200000)
    host = FakeHost()
    ctx = context(bundle, host, "--no-sysbox-mgr", "--no-sysbox-fs")
    rec = run_create(ctx)
    assert not any(c.startswith(("mgr.", "fs.")) for c in host.calls)
    assert not rec.registered and rec.mgr_socket is None and rec.fs is None
    delete.force(ctx)
    assert host.live == set()


def test_without_a_manager_a_mapping_outside_the_pool_is_refused_first(bundle):
    _map_to(bundle, 1000)
    host = FakeHost()
    with pytest.raises(SysboxError, match="linux.uidMappings: host ids 1000-66535"):
        run_create(context(bundle, host, "--no-sysbox-mgr"))
    assert host.live == set() and "makedirs" not in host.calls


def test_an_existing_runc_container_is_refused_before_anything(bundle):
    host = FakeHost(fs_socket=FS, live={"runc"})
    with pytest.raises(SysboxError, match="container with id exists: c1"):
        run_create(context(bundle, host))
    assert "makedirs" not in host.calls and host.live == {"runc"}


def test_a_bad_shift_mode_names_the_flag(bundle):
    with pytest.raises(SysboxError, match="--shift-mode: 'sideways' is not one of auto, idmap, chown"):
        run_create(context(bundle, FakeHost(), "--shift-mode", "sideways"))


# -- the record's versions

V1 = {  # meta.json as sysbox-runc wrote it before the create steps (no version, no runc_created)
    "id": "c1", "bundle": "/b", "mgr_socket": MGR, "keep": False, "registered": True,
    "rootfs": {"rootfs": "/b/rootfs", "target": "/s/k/c1/rootfs", "uid": 165536, "gid": 165536, "size": 65536,
               "mode": "idmap"},
    "ns_mounts": [], "binds": ["/s/k/c1/binds/3"], "pid": 99, "cgroups": ["/sys/fs/cgroup/x"],
    "fs": {"socket": FS, "mountpoint": "/m", "seccomp_socket": "/q", "instance": ""},
}


def test_a_version_1_record_loads_and_is_undone(bundle, tmp_path):
    rec = record.Record.from_dict(V1)
    assert rec.runc_created and rec.registered and rec.binds == ["/s/k/c1/binds/3"] and rec.devices is None
    host = FakeHost(live={"dir:/s/k/c1", "mgr:c1", "runc", "fs:c1", "mount:/s/k/c1/rootfs", "mount:/s/k/c1/binds/3"})
    ctx = context(bundle, host)
    ctx.cdir = "/s/k/c1"
    steps.undo_all(ctx, rec)
    assert host.live == set()


def test_a_partial_version_1_record_from_a_killed_create(bundle):
    rec = record.Record.from_dict({"id": "c1", "bundle": "/b", "mgr_socket": None, "keep": True})
    assert not rec.registered and rec.rootfs is None and rec.keep
    host = FakeHost(live={"dir:/s/k/c1"})
    ctx = context(bundle, host)
    ctx.cdir = "/s/k/c1"
    steps.undo_all(ctx, rec)
    assert host.live == set()


def test_the_record_round_trips_with_its_version(tmp_path):
    rec = record.Record.from_dict(V1)
    d = rec.to_dict()
    assert d["version"] == record.VERSION
    assert record.Record.from_dict(json.loads(json.dumps(d))).to_dict() == d


@pytest.mark.parametrize("bad, message", [
    ({**V1, "version": record.VERSION + 1}, "record version 3 is not one this sysbox-runc reads"),
    ({**V1, "version": "2"}, "record version '2'"),
    ({**V1, "id": ""}, "id: missing"),
])
def test_a_record_it_cannot_read_is_refused_by_name(bad, message):
    with pytest.raises(SysboxError, match=message) as e:
        record.Record.from_dict(bad, "/s/k/c1/meta.json")
    assert str(e.value).startswith("/s/k/c1/meta.json: ")


def test_load_and_save_on_disk(tmp_path):
    assert record.load(str(tmp_path)) is None
    rec = record.Record("c2", "/b")
    rec.ns_mounts.append("/x")
    record.save(str(tmp_path), rec)
    assert (tmp_path / "meta.json").stat().st_mode & 0o777 == 0o600
    back = record.load(str(tmp_path))
    assert back is not None and back.to_dict() == rec.to_dict()
    (tmp_path / "meta.json").write_text("[1, 2]")
    assert record.load(str(tmp_path)) is None
