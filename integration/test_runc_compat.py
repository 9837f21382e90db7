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


def test_version_keeps_runcs_lines_first_then_names_sysbox():
    """Tools parse runc's first lines (`runc version`, `commit:`, `spec:`)."""
    ours, theirs = run([SYSBOX_RUNC, "--version"]), run(["runc", "--version"])
    assert ours.returncode == 0 and theirs.returncode == 0
    lines, runc_lines = ours.stdout.splitlines(), theirs.stdout.splitlines()
    assert lines[:len(runc_lines)] == runc_lines and lines[0].startswith("runc version ")
    assert lines[len(runc_lines)].startswith("sysbox-runc version ")


RUNC_COMMANDS = ["checkpoint", "restore", "create", "run", "start", "state", "kill", "delete", "exec", "ps",
                 "pause", "resume", "update", "events", "features", "list", "spec"]


@pytest.mark.parametrize("command", RUNC_COMMANDS)
@pytest.mark.parametrize("flag", ["-h", "--help"])
def test_every_subcommands_help_is_runcs(command, flag):
    ours, theirs = run([SYSBOX_RUNC, command, flag]), run(["runc", command, flag])
    assert (ours.returncode, ours.stdout) == (theirs.returncode, theirs.stdout), ours.stderr


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


@pytest.mark.parametrize("atime", ["strictatime", "noatime", "nodiratime", "relatime"])
def test_bind_with_an_atime_option_runs_as_with_runc(make_bundle, rt, runc_root, cid, tmp_path, atime):
    """runc's remount of a bind with an atime option: locked under a user namespace (EPERM),
    so sysbox-runc keeps the source's atime flags instead, and the container runs as with runc."""
    src = tmp_path / "src"
    src.mkdir()
    (src / "f").write_text("x")
    os.chmod(tmp_path, 0o755)
    results = []
    for name, runner in (("runc", None), ("sysbox", rt)):
        bundle = make_bundle(["cat", "/mnt/f"], name=f"{name}-{atime}")
        path = os.path.join(bundle, "config.json")
        spec = json.load(open(path))
        spec["mounts"].append({"destination": "/mnt", "type": "bind", "source": str(src),
                               "options": ["rbind", atime]})
        json.dump(spec, open(path, "w"))
        out = runner("run", "--bundle", bundle, cid + name) if runner else \
            run(["runc", "--root", runc_root, "run", "--bundle", bundle, cid + name])
        results.append((out.returncode, out.stdout))
    assert results[0] == results[1] == (0, "x"), results


@pytest.mark.parametrize("prop", ["slave", "rslave", "private", "rprivate", "shared", "rshared", "unbindable"])
def test_rootfs_propagation_as_with_runc(make_bundle, rt, runc_root, cid, prop):
    """Same exit status as runc for every linux.rootfsPropagation (runc 1.1.5 itself fails on
    unbindable: its bind of the rootfs onto itself is EINVAL there), special dirs included."""
    codes = []
    for name, runner in (("runc", None), ("sysbox", rt)):
        bundle = make_bundle(["true"], name=f"{name}-{prop}")
        path = os.path.join(bundle, "config.json")
        spec = json.load(open(path))
        spec["linux"]["rootfsPropagation"] = prop
        json.dump(spec, open(path, "w"))
        out = runner("run", "--bundle", bundle, cid + name) if runner else \
            run(["runc", "--root", runc_root, "run", "--bundle", bundle, cid + name])
        codes.append(out.returncode)
    assert codes[0] == codes[1], codes
    assert cid + "sysbox" not in rt.registered()


def _caps_of(runner, runc_root: str, bundle: str, cid: str) -> list[str]:
    out = runner("run", "--bundle", bundle, cid) if runner else \
        run(["runc", "--root", runc_root, "run", "--bundle", bundle, cid])
    assert out.returncode == 0, out.stderr
    return [line for line in out.stdout.splitlines() if line.startswith("Cap")]


@pytest.mark.parametrize("uid,annotation", [(1000, None), (0, "true")])
def test_capabilities_as_the_spec_asks_like_runc(make_bundle, rt, runc_root, cid, uid, annotation):
    """Non-root processes get exactly the spec's sets; root too with io.sysbox.honor-caps."""
    wanted = ["CAP_NET_BIND_SERVICE", "CAP_KILL"]
    seen = []
    for name, runner in (("runc", None), ("sysbox", rt)):
        bundle = make_bundle(["grep", "^Cap", "/proc/self/status"], name=f"{name}-{uid}")
        path = os.path.join(bundle, "config.json")
        spec = json.load(open(path))
        spec["process"]["user"] = {"uid": uid, "gid": uid}
        spec["process"]["capabilities"] = {k: list(wanted) for k in
                                           ("bounding", "effective", "permitted", "inheritable", "ambient")}
        if annotation:
            spec.setdefault("annotations", {})["io.sysbox.honor-caps"] = annotation
        json.dump(spec, open(path, "w"))
        seen.append(_caps_of(runner, runc_root, bundle, cid + name))
    assert seen[0] == seen[1] and any(line.startswith("CapAmb:") and line.split()[1] != "0" * 16
                                      for line in seen[0]), seen


def test_root_gets_the_full_set_by_default(make_bundle, rt, runc_root, cid):
    """The deliberate difference: a system container's root has every capability (in its userns)."""
    bundle = make_bundle(["grep", "^CapEff", "/proc/self/status"])
    eff = int(_caps_of(rt, runc_root, bundle, cid)[0].split()[1], 16)
    last = int(open("/proc/sys/kernel/cap_last_cap").read())
    assert eff == (1 << (last + 1)) - 1
