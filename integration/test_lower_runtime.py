"""Choosing the lower runtime: --lower-runtime, $SYSBOX_LOWER_RUNTIME, or the config file.

crun 1.8.1 refuses this cgroup v1+v2 hybrid host ("cgroups in hybrid mode not supported"),
so here the selection is proven by crun's own refusal reaching the caller, with nothing left
behind; containers actually running on crun are tested by vagrant/ on a cgroup v2 VM.
"""

from __future__ import annotations

import os
import shutil

import pytest

from integration.conftest import SYSBOX_RUNC, run

needs_crun = pytest.mark.skipif(not shutil.which("crun"), reason="crun is not installed (apt-get install crun)")


def state_dirs(rt) -> list[str]:
    from sysbox.runc import state

    base = os.path.dirname(state.container_dir({"root": rt.root, "sysbox-state": rt.state_dir}, "x"))
    return os.listdir(base) if os.path.isdir(base) else []


@needs_crun
def test_crun_selected_by_flag_refuses_hybrid_host_and_nothing_leaks(rt, make_bundle, cid):
    out = rt("--lower-runtime", "crun", "run", "--bundle", make_bundle(["true"]), cid)
    assert out.returncode != 0
    assert "hybrid" in out.stderr, out.stderr
    assert cid not in rt.registered() and cid not in rt.fs_registered()
    assert cid not in state_dirs(rt)
    assert rt("state", cid).returncode != 0


@needs_crun
def test_crun_selected_by_config_file(rt, make_bundle, cid, tmp_path):
    conf = tmp_path / "sysbox-runc.conf"
    conf.write_text("lower-runtime = crun\n")
    env = {**os.environ, "SYSBOX_RUNC_CONFIG": str(conf)}
    env.pop("SYSBOX_LOWER_RUNTIME", None)
    version = run([SYSBOX_RUNC, "--version"], env=env)
    assert version.returncode == 0 and "lower runtime: " + shutil.which("crun") in version.stdout
    assert "crun version" in version.stdout
    out = run(rt.argv("create", "--bundle", make_bundle(["true"]), cid), env=env)
    assert out.returncode != 0 and "hybrid" in out.stderr, out.stderr
    assert cid not in rt.registered() and cid not in state_dirs(rt)


def test_flag_beats_config_file(rt, make_bundle, cid, tmp_path):
    conf = tmp_path / "sysbox-runc.conf"
    conf.write_text("lower-runtime = crun\n")
    env = {**os.environ, "SYSBOX_RUNC_CONFIG": str(conf)}
    out = run(rt.argv("--lower-runtime", "runc", "run", "--bundle", make_bundle(["true"]), cid), env=env)
    assert out.returncode == 0, out.stderr


@pytest.mark.parametrize("conf_text,flag,msg", [
    ("", "no-such-runtime", "lower runtime 'no-such-runtime' not found"),
    ("", "{tmp}/plain-file", "lower runtime {tmp}/plain-file: not an executable file"),
    ("lower_runtime = crun\n", None, "sysbox-runc.conf:1: expected one of"),
])
def test_bad_lower_runtime_is_one_line(rt, make_bundle, cid, tmp_path, conf_text, flag, msg):
    conf = tmp_path / "sysbox-runc.conf"
    conf.write_text(conf_text)
    (tmp_path / "plain-file").write_text("not a program\n")
    env = {**os.environ, "SYSBOX_RUNC_CONFIG": str(conf)}
    flag, msg = (flag or "").replace("{tmp}", str(tmp_path)), msg.replace("{tmp}", str(tmp_path))
    args = ["--lower-runtime", flag] if flag else []
    out = run(rt.argv(*args, "run", "--bundle", make_bundle(["true"]), cid), env=env)
    assert out.returncode == 1
    assert msg in out.stderr and len(out.stderr.strip().splitlines()) == 1, out.stderr
    assert cid not in rt.registered() and cid not in state_dirs(rt)
