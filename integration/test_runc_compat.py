"""sysbox-runc speaks runc's command line: checked against runc itself on the same bundle."""

from __future__ import annotations

import json
import os
import time

import pytest

from integration.conftest import SYSBOX_RUNC, mounts, run


def test_run_busybox_in_foreground(make_bundle, rt, cid):
    bundle = make_bundle(["sh", "-c", "echo hello-$(hostname); exit 3"], hostname="bb")
    out = rt("run", "--bundle", bundle, cid)
    assert out.stdout.strip() == "hello-bb"
    assert out.returncode == 3  # the container's exit status, like runc
    assert rt("state", cid).returncode == 1  # run without --keep deletes, like runc
    assert cid not in rt.registered()


def _lifecycle(prefix: list[str], bundle: str, cid: str) -> list:
    """create/start/state/kill/delete; returns what a caller would observe at each step."""
    def call(*args: str):
        return run(prefix + list(args))

    def state(c: str) -> dict:
        return json.loads(call("state", c).stdout)

    seen = []
    r = call("create", "--bundle", bundle, cid)
    seen.append(("create", r.returncode))
    st = state(cid)
    seen.append(("state-created", st["status"], sorted(set(st) - {"annotations"}), st["pid"] > 0))
    seen.append(("start", call("start", cid).returncode))
    seen.append(("state-running", state(cid)["status"]))
    ps = call("ps", "--format", "json", cid)
    seen.append(("ps", ps.returncode, len(json.loads(ps.stdout)) >= 1))
    seen.append(("kill", call("kill", cid, "KILL").returncode))
    for _ in range(100):
        if state(cid)["status"] == "stopped":
            break
        time.sleep(0.05)
    seen.append(("state-stopped", state(cid)["status"]))
    seen.append(("delete", call("delete", cid).returncode))
    gone = call("state", cid)
    seen.append(("state-gone", gone.returncode, gone.stdout))
    seen.append(("delete-again", call("delete", cid).returncode))
    seen.append(("kill-gone", call("kill", cid).returncode))
    return seen


def test_lifecycle_matches_runc(make_bundle, rt, cid):
    bundle = make_bundle(["sleep", "300"])
    ours = _lifecycle(rt.argv(), bundle, cid)
    theirs = _lifecycle(["runc", "--root", rt.root], bundle, cid + "-runc")
    assert ours == theirs
    assert ours[1][1] == "created" and ours[3][1] == "running" and ours[6][1] == "stopped"
    assert ours[8][1] != 0  # state of a deleted container fails


def test_version_names_both():
    out = run([SYSBOX_RUNC, "--version"])
    assert out.returncode == 0
    lines = out.stdout.splitlines()
    assert lines[0].startswith("sysbox-runc version ")
    assert any(line.startswith("runc version ") for line in lines)


def test_exec_and_events_pass_through(make_bundle, rt, cid):
    bundle = make_bundle(["sleep", "300"])
    assert rt("run", "-d", "--bundle", bundle, cid).returncode == 0
    out = rt("exec", "-e", "X=42", cid, "sh", "-c", "echo $X")
    assert out.stdout.strip() == "42"
    ev = rt("events", "--stats", cid)
    assert ev.returncode == 0 and json.loads(ev.stdout)["type"] == "stats"
    assert rt("list", "-q").stdout.split() == [cid]
    assert rt("delete", "-f", cid).returncode == 0
    assert cid not in rt.registered()


def test_missing_lower_runtime_is_clear(make_bundle, runc_root, cid):
    out = run([SYSBOX_RUNC, "--lower-runtime", "/nonexistent/runc", "--root", runc_root, "state", cid])
    assert out.returncode == 1
    assert out.stderr == "sysbox-runc: lower runtime /nonexistent/runc: not an executable file\n"


@pytest.mark.parametrize("fmt", ["json", "text"])
def test_errors_reach_the_log_file(tmp_path, rt, runc_root, cid, fmt):
    log = tmp_path / "log"
    out = rt("--log", str(log), "--log-format", fmt, "create", "--bundle", str(tmp_path / "missing"), cid)
    assert out.returncode == 1
    text = log.read_text()
    if fmt == "json":
        entry = json.loads(text.splitlines()[-1])
        assert entry["level"] == "error" and "not a directory" in entry["msg"]
        # RFC 3339, as containerd-shim-runc-v2 parses it (a +0000 offset made the shim drop the error)
        import datetime

        assert entry["time"].endswith("Z") and datetime.datetime.fromisoformat(entry["time"].replace("Z", "+00:00"))
    else:
        assert "level=error" in text and "not a directory" in text
    assert not os.path.exists(os.path.join(runc_root, cid))


def test_delete_without_our_flags_finds_the_state_through_runc(make_bundle, rt, cid):
    """podman's cleanup (conmon's exit command) calls `delete` without --runtime-flag options."""
    assert rt("create", "--bundle", make_bundle(["sleep", "100"]), cid).returncode == 0
    assert cid in rt.registered() and cid in rt.fs_registered()
    from sysbox.runc import state

    cdir = state.container_dir({"root": rt.root, "sysbox-state": rt.state_dir}, cid)
    assert os.path.isdir(cdir)
    env = {k: v for k, v in os.environ.items() if not k.startswith("SYSBOX_")}
    out = run([SYSBOX_RUNC, "--root", rt.root, "delete", "--force", cid], env=env)
    assert out.returncode == 0, out.stderr
    assert not os.path.exists(cdir)
    assert cid not in rt.registered() and cid not in rt.fs_registered()
    assert not [m for m in mounts() if cid in m]
