"""sysbox-runc as a runc-compatible passthrough, checked against runc on the same bundle."""

from __future__ import annotations

import json
import os
import time

import pytest

from integration.conftest import SYSBOX_RUNC, run, state


def test_run_busybox_in_foreground(make_bundle, runc_root, cid):
    bundle = make_bundle(["sh", "-c", "echo hello-$(hostname); exit 3"], hostname="bb")
    out = run([SYSBOX_RUNC, "--root", runc_root, "run", "--bundle", bundle, cid])
    assert out.stdout.strip() == "hello-bb"
    assert out.returncode == 3  # the container's exit status, like runc
    run([SYSBOX_RUNC, "--root", runc_root, "delete", cid])


def _lifecycle(runtime: str, bundle: str, root: str, cid: str) -> list:
    """create/start/state/kill/delete; returns what a caller would observe at each step."""
    seen = []
    r = run([runtime, "--root", root, "create", "--bundle", bundle, cid])
    seen.append(("create", r.returncode))
    st = state(runtime, root, cid)
    seen.append(("state-created", st["status"], sorted(st), st["bundle"] == bundle, st["pid"] > 0))
    seen.append(("start", run([runtime, "--root", root, "start", cid]).returncode))
    seen.append(("state-running", state(runtime, root, cid)["status"]))
    ps = run([runtime, "--root", root, "ps", "--format", "json", cid])
    seen.append(("ps", ps.returncode, len(json.loads(ps.stdout)) >= 1))
    seen.append(("kill", run([runtime, "--root", root, "kill", cid, "KILL"]).returncode))
    for _ in range(100):
        if state(runtime, root, cid)["status"] == "stopped":
            break
        time.sleep(0.05)
    seen.append(("state-stopped", state(runtime, root, cid)["status"]))
    seen.append(("delete", run([runtime, "--root", root, "delete", cid]).returncode))
    gone = run([runtime, "--root", root, "state", cid])
    seen.append(("state-gone", gone.returncode, gone.stdout))
    seen.append(("delete-again", run([runtime, "--root", root, "delete", cid]).returncode))
    seen.append(("kill-gone", run([runtime, "--root", root, "kill", cid]).returncode))
    return seen


def test_lifecycle_matches_runc(make_bundle, runc_root, cid):
    bundle = make_bundle(["sleep", "300"])
    ours = _lifecycle(SYSBOX_RUNC, bundle, runc_root, cid)
    theirs = _lifecycle("runc", bundle, runc_root, cid + "-runc")
    assert ours == theirs
    assert ours[1][1] == "created" and ours[3][1] == "running" and ours[6][1] == "stopped"
    assert ours[8][1] != 0  # state of a deleted container fails


def test_version_names_both():
    out = run([SYSBOX_RUNC, "--version"])
    assert out.returncode == 0
    lines = out.stdout.splitlines()
    assert lines[0].startswith("sysbox-runc version ")
    assert any(line.startswith("runc version ") for line in lines)


def test_exec_and_events_pass_through(make_bundle, runc_root, cid):
    bundle = make_bundle(["sleep", "300"])
    assert run([SYSBOX_RUNC, "--root", runc_root, "run", "-d", "--bundle", bundle, cid]).returncode == 0
    out = run([SYSBOX_RUNC, "--root", runc_root, "exec", "-e", "X=42", cid, "sh", "-c", "echo $X"])
    assert out.stdout.strip() == "42"
    ev = run([SYSBOX_RUNC, "--root", runc_root, "events", "--stats", cid])
    assert ev.returncode == 0 and json.loads(ev.stdout)["type"] == "stats"
    lst = run([SYSBOX_RUNC, "--root", runc_root, "list", "-q"])
    assert lst.stdout.split() == [cid]
    assert run([SYSBOX_RUNC, "--root", runc_root, "delete", "-f", cid]).returncode == 0


def test_missing_lower_runtime_is_clear(make_bundle, runc_root, cid):
    out = run([SYSBOX_RUNC, "--lower-runtime", "/nonexistent/runc", "--root", runc_root, "state", cid])
    assert out.returncode == 1
    assert out.stderr == "sysbox-runc: lower runtime /nonexistent/runc: not an executable file\n"


@pytest.mark.parametrize("fmt", ["json", "text"])
def test_errors_reach_the_log_file(tmp_path, runc_root, cid, fmt):
    log = tmp_path / "log"
    out = run([SYSBOX_RUNC, "--log", str(log), "--log-format", fmt, "--root", runc_root, "create",
               "--bundle", str(tmp_path / "missing"), cid])
    assert out.returncode == 1
    text = log.read_text()
    if fmt == "json":
        entry = json.loads(text.splitlines()[-1])
        assert entry["level"] == "error" and "not a directory" in entry["msg"]
    else:
        assert "level=error" in text and "not a directory" in text
    assert not os.path.exists(os.path.join(runc_root, cid))
