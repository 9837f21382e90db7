"""containerd calls state, kill, ps and events many times per container: those must not pay
for the modules create needs.  Checked on the installed entry point, as containerd runs it."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from integration.conftest import SYSBOX_RUNC

HEAVY = ("jsonschema", "trio", "ctypes", "json", "subprocess", "sqlite3", "socket", "pyfuse3", "pyroute2",
         "sysbox.oci", "sysbox.mgr", "sysbox.linux", "sysbox.runc.create", "sysbox.runc.transform")


def _python_entry() -> list[str]:
    """The Python command the front end runs, with import timing on."""
    import json

    from sysbox import launcher

    return [sys.executable, "-X", "importtime", "-I", "-S", "-c", launcher.MAIN.format(paths=json.dumps(launcher.paths()))]


def _fake_runc(tmp_path) -> str:
    fake = tmp_path / "runc"
    fake.write_text(f"#!/bin/sh\nprintf '%s\\n' \"$@\" > {tmp_path}/argv\n")  # records what runc was given
    fake.chmod(0o755)
    return str(fake)


PASS_THROUGH = [["state", "x"], ["kill", "x", "KILL"], ["kill", "x", "0"], ["ps", "x"], ["events", "--stats", "x"],
                ["start", "x"], ["pause", "x"], ["resume", "x"], ["list", "-q"], ["features"]]
GLOBALS = [["--mgr-socket", "/m", "--fs-socket=/f", "--sysbox-state", "/s", "--root", "/r"],
           ["--debug", "--log", "/l", "--log-format=json", "--no-sysbox-fs", "--no-sysbox-mgr", "--root=/r"], []]


@pytest.mark.parametrize("args", PASS_THROUGH)
@pytest.mark.parametrize("glob", GLOBALS)
def test_pass_through_commands_start_no_python(tmp_path, args, glob):
    """The installed front end (sysbox/data/sysbox-runc) execs runc itself, with exactly the
    arguments the Python parser would give it (sysbox's own globals dropped)."""
    from sysbox.runc import cli

    fake = _fake_runc(tmp_path)
    trace = tmp_path / "trace"
    argv = [SYSBOX_RUNC, "--lower-runtime", fake, *glob, *args]
    out = subprocess.run(["strace", "-f", "-qq", "-e", "trace=execve", "-o", str(trace), *argv],
                         capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    programs = [line.split('"')[1] for line in trace.read_text().splitlines() if "execve(" in line]
    assert programs == [SYSBOX_RUNC, fake], programs
    assert (tmp_path / "argv").read_text().splitlines() == cli.parse(argv[1:]).lower_argv()


@pytest.mark.parametrize("args", [["kill", "x", "TERM"], ["exec", "x", "true"], ["state", "--help"]])
def test_the_rest_reaches_python(tmp_path, args):
    fake = _fake_runc(tmp_path)
    trace = tmp_path / "trace"
    out = subprocess.run(["strace", "-f", "-qq", "-e", "trace=execve", "-o", str(trace), SYSBOX_RUNC,
                          "--lower-runtime", fake, "--root", str(tmp_path), *args],
                         capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    programs = [line.split('"')[1] for line in trace.read_text().splitlines() if "execve(" in line]
    assert programs[0] == SYSBOX_RUNC and "python" in programs[1] and programs[-1] == fake, programs


def test_the_front_end_knows_the_flags_and_keys_python_knows():
    """The sh front end cannot import the flag table or the settings: its copies must not drift
    (a new sysbox flag it did not know would be passed on to runc)."""
    import re

    from sysbox.runc import cli, settings

    with open(os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "sysbox", "data",
                           "sysbox-runc")) as f:
        text = f.read()
    step1 = text[text.index("# 1."):text.index("# 2.")]
    step4 = text[text.index("# 5."):]
    valued = {n for n, v in cli.GLOBAL_FLAGS.items() if v}
    plain = {n for n, v in cli.GLOBAL_FLAGS.items() if not v} - {"help", "version"}
    for name in valued:
        assert re.search(rf"[|(\s]--{name}[|)]", step1) and f"--{name}=*" in step1, name
    for name in plain:
        assert f"--{name}" in step1, name
    for name in cli.SYSBOX_GLOBALS:
        assert f"--{name}" in step4, name  # dropped before runc
    conf_keys = re.search(r"lower-runtime\) \[ -n \"\$lower\" \] \|\| lower=\$value ;;\n\s*sysbox-state\) .*\n"
                          r"\s*([\w|-]+)\) ;;", text)
    assert conf_keys and set(conf_keys.group(1).split("|")) | {"lower-runtime", "sysbox-state"} == set(settings.KEYS)


def test_config_file_as_python_reads_it(tmp_path):
    """The front end reads the lower runtime from the config file as settings.py does; a line it
    does not take goes to Python, which names it."""
    fake = _fake_runc(tmp_path)
    conf = tmp_path / "sysbox-runc.conf"
    conf.write_text(f"# comment\n  honor-caps = true  \nlower-runtime =  \"{fake}\"  # ours\n")
    env = {**os.environ, "SYSBOX_RUNC_CONFIG": str(conf)}
    env.pop("SYSBOX_LOWER_RUNTIME", None)
    out = subprocess.run([SYSBOX_RUNC, "state", "x"], env=env, capture_output=True, text=True, timeout=30)
    assert out.returncode == 0 and (tmp_path / "argv").read_text().split() == ["state", "x"], out.stderr
    conf.write_text("lower-runtime\n")
    out = subprocess.run([SYSBOX_RUNC, "state", "x"], env=env, capture_output=True, text=True, timeout=30)
    assert out.returncode == 1 and out.stderr.startswith(f"sysbox-runc: {conf}:1: expected one of "), out.stderr
    conf.write_text(f"lower-runtime = {tmp_path}/missing\n")
    out = subprocess.run([SYSBOX_RUNC, "state", "x"], env=env, capture_output=True, text=True, timeout=30)
    assert (out.returncode, out.stderr) == (1, f"sysbox-runc: lower runtime {tmp_path}/missing: not an executable "
                                               "file\n")


@pytest.mark.parametrize("args", [["kill", "x", "TERM"], ["exec", "x", "true"]])
def test_python_entry_imports_nothing_heavy(tmp_path, args):
    """What reaches Python on the hot path (kill TERM, exec) does not pay for create's modules."""
    fake = _fake_runc(tmp_path)
    out = subprocess.run([*_python_entry(), "--lower-runtime", fake, "--root", str(tmp_path), *args],
                         capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    imported = {line.split("|")[-1].strip() for line in out.stderr.splitlines() if line.startswith("import time:")}
    assert "sysbox.runc.cli" in imported
    heavy = sorted(m for m in imported if m.split(".")[0] in HEAVY or any(m.startswith(h + ".") or m == h for h in HEAVY))
    assert heavy == []


def test_sigterm_becomes_sigrtmin3_for_systemd_containers(tmp_path):
    """The translation reads one marker file; the lower runtime sees signal 37."""
    from sysbox.runc import state

    fake_runc = tmp_path / "runc"
    fake_runc.write_text(f"#!/bin/sh\necho \"$@\" > {tmp_path}/argv\n")
    fake_runc.chmod(0o755)
    glob = {"root": str(tmp_path / "root"), "sysbox-state": str(tmp_path / "st")}
    cdir = state.container_dir(glob, "sd")
    os.makedirs(cdir)
    open(os.path.join(cdir, state.SYSTEMD_MARK), "w").close()
    base = [SYSBOX_RUNC, "--lower-runtime", str(fake_runc), "--sysbox-state", glob["sysbox-state"], "--root", glob["root"]]
    for cid, sig, expect in (("sd", "TERM", "37"), ("sd", "KILL", "KILL"), ("other", "SIGTERM", "SIGTERM")):
        assert subprocess.run(base + ["kill", cid, sig], timeout=30).returncode == 0
        assert (tmp_path / "argv").read_text().split()[-2:] == [cid, expect]


def test_installed_launcher_is_the_front_end():
    """make venv replaces pip's console script with sysbox/launcher.py's: the sh front end,
    whose Python runs isolated and without site processing."""
    with open(SYSBOX_RUNC) as f:
        text = f.read()
    assert text.startswith("#!/bin/sh\n") and "\nPYTHON_MAIN='" in text and " -I -S -c " in text
    out = subprocess.run([SYSBOX_RUNC, "--version"], capture_output=True, text=True, timeout=30)
    assert out.returncode == 0 and "\nsysbox-runc version " in out.stdout


def test_create_leaves_schema_validation_to_the_manager(rt, make_bundle, cid):
    bundle = make_bundle(["sleep", "300"])
    out = subprocess.run([*_python_entry(), *rt.argv("create", "--bundle", bundle, cid)[1:]],
                         capture_output=False, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                         stderr=open(os.path.join(os.path.dirname(bundle), "imports"), "w"), timeout=60)
    assert out.returncode == 0
    imported = open(os.path.join(os.path.dirname(bundle), "imports")).read()
    assert "sysbox.runc.create" in imported and "jsonschema" not in imported


def test_without_manager_the_schema_is_checked_locally(rt, make_bundle, cid):
    import json

    bundle = make_bundle(["true"])
    cfg = os.path.join(bundle, "config.json")
    spec = json.load(open(cfg))
    spec["process"]["args"] = "sh"
    json.dump(spec, open(cfg, "w"))
    out = subprocess.run([SYSBOX_RUNC, "--no-sysbox-mgr", "--no-sysbox-fs", "--root", rt.root, "create", "--bundle",
                          bundle, cid], capture_output=True, text=True, timeout=60)
    assert out.returncode == 1 and out.stderr.startswith('sysbox-runc: process.args: expected array, got str "sh"')


# What a real run (create, start, wait, delete) needs beyond the hot path's modules: not json
# (it imports re, enum and functools: ~10 ms), subprocess (~5 ms), signal's enums, socket's,
# copy, contextlib or the terminal's modules.  Each was a measured cost on every container start
# (docs/architecture.md, issue 17's note); this keeps them from coming back unnoticed.
CREATE_PATH_AVOIDS = ("json", "re", "enum", "functools", "subprocess", "signal", "socket", "selectors", "copy",
                      "contextlib", "tempfile", "shutil", "threading", "jsonschema", "typing", "dataclasses")


def test_a_run_imports_none_of_the_costly_modules(rt, make_bundle, cid):
    bundle = make_bundle(["true"])
    entry = _python_entry()
    out = subprocess.run([*entry, *rt.argv()[1:], "run", "--bundle", bundle, cid], capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == 0, out.stderr[-2000:]
    imported = {line.split("|")[-1].strip() for line in out.stderr.splitlines() if line.startswith("import time:")}
    assert {"sysbox.runc.steps", "sysbox.runc.host", "sysbox.ipc", "sysbox.linux.idmap"} <= imported  # it did the work
    assert sorted(imported & set(CREATE_PATH_AVOIDS)) == []


def _programs(tmp_path, argv, env=None) -> list[str]:
    trace = tmp_path / "trace"
    out = subprocess.run(["strace", "-f", "-qq", "-e", "trace=execve", "-o", str(trace), *argv],
                         capture_output=True, text=True, timeout=30, env=env)
    assert out.returncode == 0, out.stderr
    return [line.split('"')[1] for line in trace.read_text().splitlines() if "execve(" in line]


@pytest.mark.parametrize("how", ["flag", "flag=", "env", "config"])
def test_delete_of_an_id_nobody_has_starts_no_python(tmp_path, how):
    """containerd's shim deletes each container twice; the second finds nothing.  Then runc is
    exec'd directly.  Anything of the id - runc's record, or a state dir of ours under any runc
    root's key (a killed create's) - goes to Python, which finishes the undo."""
    from sysbox.runc import cli, state

    fake = _fake_runc(tmp_path)
    root, st = tmp_path / "root", tmp_path / "st"
    env = {k: v for k, v in os.environ.items() if k not in ("SYSBOX_RUNC_STATE_DIR", "SYSBOX_LOWER_RUNTIME")}
    env["SYSBOX_RUNC_CONFIG"] = str(tmp_path / "absent.conf")
    glob = ["--lower-runtime", fake, "--root", str(root)]
    if how == "flag":
        glob += ["--sysbox-state", str(st)]
    elif how == "flag=":
        glob += [f"--sysbox-state={st}"]
    elif how == "env":
        env["SYSBOX_RUNC_STATE_DIR"] = str(st)
    else:
        (tmp_path / "absent.conf").write_text(f"sysbox-state = {st}\n")
    argv = [SYSBOX_RUNC, *glob, "delete", "--force", "gone"]
    assert _programs(tmp_path, argv, env) == [SYSBOX_RUNC, fake]
    assert (tmp_path / "argv").read_text().splitlines() == cli.parse(argv[1:]).lower_argv()
    leftover = state.container_dir({"root": str(root), "sysbox-state": str(st)}, "gone")
    os.makedirs(leftover)  # ours, left by a killed create
    programs = _programs(tmp_path, argv, env)
    assert "python" in programs[1] and programs[-1] == fake, programs
    assert not os.path.exists(leftover)  # Python finished the undo
    (root / "kept").mkdir(parents=True)  # runc's record
    programs = _programs(tmp_path, [SYSBOX_RUNC, *glob, "delete", "kept"], env)
    assert "python" in programs[1], programs


def test_a_real_delete_twice(rt, make_bundle, cid):
    """The first delete (Python) undoes everything; the second (runc alone) reports the id gone,
    as runc does."""
    bundle = make_bundle(["sleep", "60"])
    assert rt("run", "-d", "--bundle", bundle, cid).returncode == 0
    first = rt("delete", "--force", cid)
    assert first.returncode == 0, first.stderr
    second, plain = rt("delete", cid), subprocess.run(["runc", "--root", rt.root, "delete", cid],
                                                      capture_output=True, text=True, timeout=30)
    assert (second.returncode, second.stderr) == (plain.returncode, plain.stderr)
    assert second.returncode != 0 and "does not exist" in second.stderr


def test_debug_logs_each_steps_time(rt, make_bundle, cid, tmp_path):
    """With runc's --debug, the log says where a create and a delete spent their time; without
    it, nothing of that is written (containerd always passes --log)."""
    import re

    from sysbox.runc import steps

    bundle = make_bundle(["sleep", "60"])
    quiet, loud = tmp_path / "quiet.log", tmp_path / "loud.log"
    argv = rt.argv()
    assert subprocess.run([argv[0], "--log", str(quiet), *argv[1:], "create", "--bundle", bundle, cid + "q"],
                          timeout=60).returncode == 0
    assert subprocess.run([argv[0], "--debug", "--log", str(loud), "--log-format", "json", *argv[1:], "create",
                           "--bundle", bundle, cid], timeout=60).returncode == 0
    assert subprocess.run([argv[0], "--debug", "--log", str(loud), "--log-format", "json", *argv[1:], "delete",
                           "--force", cid], timeout=60).returncode == 0
    assert rt("delete", "--force", cid + "q").returncode == 0
    assert "step " not in (quiet.read_text() if quiet.exists() else "")
    text = loud.read_text()
    timed = re.findall(rf'"msg": "step (undo )?([\w -]+) of {cid}: [0-9.]+ ms"', text)
    assert {name for undo, name in timed if not undo} == {s.name for s in steps.STEPS}
    assert {name for undo, name in timed if undo} == {s.name for s in steps.STEPS}
