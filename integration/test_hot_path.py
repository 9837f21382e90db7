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
