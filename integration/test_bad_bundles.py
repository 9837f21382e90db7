"""Malformed bundles: one clear line naming the field, exit 1, and nothing left behind."""

from __future__ import annotations

import json
import os

import pytest

from integration.conftest import cgroup_exists, mounts


def _edit(spec: dict, path: str, value) -> None:
    keys = path.split(".")
    node = spec
    for k in keys[:-1]:
        node = node[int(k)] if k.isdigit() else node[k]
    last = int(keys[-1]) if keys[-1].isdigit() else keys[-1]
    if value is KeyError:
        del node[last]
    else:
        node[last] = value


# (case id, how to break the bundle, text the error line must contain)
CASES = [
    ("no-config", ("unlink",), "config.json not found"),
    ("invalid-json", ("raw", b'{"ociVersion": "1.0.2",'), "invalid JSON at line 1"),
    ("empty-file", ("raw", b""), "invalid JSON at line 1 column 1"),
    ("not-utf8", ("raw", b'{"ociVersion": "\xff\xfe"}'), "not valid UTF-8"),
    ("top-level-array", ("raw", b"[]"), "expected a JSON object at the top level"),
    ("missing-ociVersion", ("edit", "ociVersion", KeyError), "ociVersion: required field is missing"),
    ("missing-root", ("edit", "root", KeyError), "root: required field is missing"),
    ("missing-root-path", ("edit", "root.path", KeyError), "root.path: required field is missing"),
    ("root-path-absent", ("edit", "root.path", "/nonexistent/rootfs"), "root.path: /nonexistent/rootfs is not a directory"),
    ("root-path-type", ("edit", "root.path", 7), "root.path: expected string"),
    ("args-type", ("edit", "process.args", "sh"), "process.args: expected array"),
    ("args-empty", ("edit", "process.args", []), "process.args: must have at least 1"),
    ("missing-process", ("edit", "process", KeyError), "process: required field is missing"),
    ("cwd-relative", ("edit", "process.cwd", "tmp"), "process.cwd:"),
    ("env-no-equals", ("edit", "process.env", ["PATH"]), "process.env[0]:"),
    ("uid-negative", ("edit", "process.user.uid", -5), "process.user.uid: -5 is below the minimum 0"),
    ("unknown-namespace", ("edit", "linux.namespaces.0.type", "vm"), "linux.namespaces[0].type:"),
    ("duplicate-namespace", ("edit", "linux.namespaces.1.type", "pid"), "duplicate namespace type 'pid'"),
    ("mounts-not-array", ("edit", "mounts", {"a": 1}), "mounts: expected array"),
    ("mount-no-destination", ("edit", "mounts.0.destination", KeyError), "mounts[0].destination: required field is missing"),
    ("rlimit-type", ("edit", "process.rlimits.0.type", "NOFILE"), "process.rlimits[0].type:"),
    ("hook-relative", ("edit", "hooks", {"prestart": [{"path": "hook.sh"}]}), "hooks.prestart[0].path:"),
    ("bad-propagation", ("edit", "linux.rootfsPropagation", "sideways"), "linux.rootfsPropagation:"),
    ("device-uid-outside", ("edit", "linux.devices", [{"path": "/dev/kvm", "type": "c", "major": 10, "minor": 232,
                                                        "uid": 70000}]),
     "linux.devices[0].uid: 70000 is outside the container's 65536 ids"),
    ("device-twice", ("edit", "linux.devices", [{"path": "/dev/x", "type": "p"}, {"path": "/dev//x", "type": "p"}]),
     "linux.devices[1].path: /dev/x is listed twice"),
    ("device-no-major", ("edit", "linux.devices", [{"path": "/dev/x", "type": "c", "minor": 1}]),
     "linux.devices[0].major"),
]


@pytest.mark.parametrize("case, breakage, expect", CASES, ids=[c[0] for c in CASES])
def test_bad_bundle(make_bundle, rt, runc_root, cid, case, breakage, expect):
    bundle = make_bundle(["true"])
    cfg = os.path.join(bundle, "config.json")
    if breakage[0] == "unlink":
        os.unlink(cfg)
    elif breakage[0] == "raw":
        with open(cfg, "wb") as f:
            f.write(breakage[1])
    else:
        with open(cfg) as f:
            spec = json.load(f)
        _edit(spec, breakage[1], breakage[2])
        with open(cfg, "w") as f:
            json.dump(spec, f)
    before_files = sorted(os.listdir(bundle))
    registered = rt.registered()
    out = rt("create", "--bundle", bundle, cid)
    assert out.returncode == 1
    lines = out.stderr.splitlines()
    assert len(lines) == 1, out.stderr
    assert lines[0].startswith("sysbox-runc: ") and expect in lines[0], lines[0]
    assert "Traceback" not in out.stderr
    # nothing created: no state, no mounts, no cgroup, the bundle as it was
    assert os.listdir(runc_root) == []
    assert [m for m in mounts() if cid in m] == []
    assert cgroup_exists(cid) == []
    assert sorted(os.listdir(bundle)) == before_files
    assert rt.registered() == registered


def test_missing_bundle_dir(rt, runc_root, cid, tmp_path):
    out = rt("run", "--bundle", str(tmp_path / "nope"), cid)
    assert out.returncode == 1
    assert out.stderr == f"sysbox-runc: bundle {tmp_path / 'nope'}: not a directory\n"
    assert os.listdir(runc_root) == []
