"""`sysbox doctor` on this host, and with a required piece taken away."""

from __future__ import annotations

import json
import os

from integration.conftest import SYSBOX, run


def test_doctor_ready_here():
    out = run([SYSBOX, "doctor"])
    assert out.returncode == 0, out.stdout
    assert "verdict: ready" in out.stdout
    for check in ("kernel", "user namespaces", "idmapped mounts", "overlayfs", "FUSE", "cgroups", "runc"):
        assert check in out.stdout


def test_doctor_json_and_missing_runc():
    env = dict(os.environ, SYSBOX_LOWER_RUNTIME="/nonexistent/runc")
    out = run([SYSBOX, "doctor", "--json"], env=env)
    assert out.returncode == 1
    checks = {c["name"]: c for c in json.loads(out.stdout)}
    assert checks["runc"]["status"] == "MISSING" and checks["runc"]["fix"] == "apt-get install runc"
    assert checks["cgroups"]["ok"] is True
    text = run([SYSBOX, "doctor"], env=env).stdout
    assert "verdict: NOT READY - missing: runc" in text
