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


@pytest.mark.parametrize("args", [["state", "x"], ["kill", "x", "TERM"], ["ps", "x"], ["events", "x"],
                                  ["start", "x"], ["pause", "x"], ["exec", "x", "true"]])
def test_hot_commands_import_nothing_heavy(tmp_path, args):
    fake_runc = tmp_path / "runc"
    fake_runc.write_text("#!/bin/sh\nexit 0\n")  # stands in for runc: we only look at our imports
    fake_runc.chmod(0o755)
    out = subprocess.run([sys.executable, "-X", "importtime", SYSBOX_RUNC, "--lower-runtime", str(fake_runc),
                          "--root", str(tmp_path), *args], capture_output=True, text=True, timeout=30)
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


def test_installed_launcher_skips_site_processing():
    """make venv replaces pip's console script with sysbox/launcher.py's, which runs Python -S."""
    with open(SYSBOX_RUNC) as f:
        first = f.readline()
    assert first.startswith("#!") and first.rstrip().endswith(" -S")
    out = subprocess.run([SYSBOX_RUNC, "--version"], capture_output=True, text=True, timeout=30)
    assert out.returncode == 0 and "\nsysbox-runc version " in out.stdout


def test_create_leaves_schema_validation_to_the_manager(rt, make_bundle, cid):
    bundle = make_bundle(["sleep", "300"])
    out = subprocess.run([sys.executable, "-X", "importtime", *rt.argv("create", "--bundle", bundle, cid)],
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
