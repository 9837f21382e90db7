"""The README's first command ends in `sysbox demo`: it must boot systemd, run Docker inside,
and leave nothing behind.  Serial: it uses fixed paths (/run/sysbox-demo) and /etc/subuid."""

from __future__ import annotations

import os

import pytest

from integration.conftest import SYSBOX, mounts, run


@pytest.mark.serial
@pytest.mark.slow
def test_demo_boots_systemd_and_docker_and_cleans_up():
    out = run([SYSBOX, "demo"], timeout=600)
    assert out.returncode == 0, out.stdout + out.stderr
    lines = {line.split(":", 1)[0].strip(): line.split(":", 1)[1].strip() for line in out.stdout.splitlines()
             if line.startswith("  ")}
    assert lines["systemd"].startswith("running after") and lines["systemd"].endswith("failed units: none")
    assert lines["docker inside"] == "dockerd active, storage driver overlay2"
    assert lines["inner docker run"].startswith("hello from a container inside")
    assert "1024 MiB total" in lines["memory (free -m)"]
    assert "cleaned up" in out.stdout
    assert not os.path.exists("/run/sysbox-demo") and not os.path.exists("/var/lib/sysbox-demo")
    assert [m for m in mounts() if "sysbox-demo" in m] == []
