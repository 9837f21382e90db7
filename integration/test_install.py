"""`sysbox install/uninstall docker`, `sysbox install systemd` and `sysbox daemon`."""

from __future__ import annotations

import json
import os
import signal
import subprocess

from integration.conftest import SYSBOX, SYSBOX_RUNC, run
from sysbox.ipc import IPCError, LineClient


def test_install_merges_backs_up_and_uninstall_reverts(tmp_path):
    cfg = tmp_path / "daemon.json"
    original = {"log-level": "warn", "runtimes": {"other": {"path": "/usr/bin/other"}}}
    cfg.write_text(json.dumps(original))
    out = run([SYSBOX, "install", "docker", "--daemon-json", str(cfg), "--default", "--runtime-arg=--no-sysbox-fs"])
    assert out.returncode == 0 and "restart dockerd" in out.stdout
    data = json.loads(cfg.read_text())
    assert data["log-level"] == "warn" and data["runtimes"]["other"] == {"path": "/usr/bin/other"}
    assert data["runtimes"]["sysbox-runc"] == {"path": SYSBOX_RUNC, "runtimeArgs": ["--no-sysbox-fs"]}
    assert data["default-runtime"] == "sysbox-runc"
    assert json.loads((tmp_path / "daemon.json.sysbox-backup").read_text()) == original
    assert run([SYSBOX, "install", "docker", "--daemon-json", str(cfg)]).returncode == 0  # idempotent
    out = run([SYSBOX, "uninstall", "docker", "--daemon-json", str(cfg)])
    assert out.returncode == 0
    assert json.loads(cfg.read_text()) == original


def test_install_refuses_broken_json(tmp_path):
    cfg = tmp_path / "daemon.json"
    cfg.write_text("{not json")
    out = run([SYSBOX, "install", "docker", "--daemon-json", str(cfg)])
    assert out.returncode == 1
    assert out.stderr.strip().startswith(f"sysbox: {cfg}: invalid JSON at line 1 column 2")
    assert cfg.read_text() == "{not json"


def test_install_systemd_units(tmp_path):
    out = run([SYSBOX, "install", "systemd", "--unit-dir", str(tmp_path)])
    assert out.returncode == 0
    assert sorted(os.listdir(tmp_path)) == ["sysbox-fs.service", "sysbox-mgr.service", "sysbox-vms.service",
                                            "sysbox.service"]
    mgr = (tmp_path / "sysbox-mgr.service").read_text()
    assert f"ExecStart={os.path.dirname(SYSBOX_RUNC)}/sysbox-mgr " in mgr and "@BINDIR@" not in mgr
    assert "Wants=sysbox-mgr.service sysbox-fs.service" in (tmp_path / "sysbox.service").read_text()
    vms = (tmp_path / "sysbox-vms.service").read_text()  # --restart always VMs come back at boot
    assert f"ExecStart={os.path.dirname(SYSBOX_RUNC)}/sysbox start --all --watch" in vms and "After=sysbox.service" in vms


def _ping(sock: str) -> bool:
    try:
        with LineClient(sock, timeout=2) as c:
            c.call("ping")
        return True
    except IPCError:
        return False


def test_daemon_starts_both_and_stops_cleanly(tmp_path):
    rundir, data, mnt = tmp_path / "run", tmp_path / "data", tmp_path / "mnt"
    p = subprocess.Popen([SYSBOX, "daemon", "--run-dir", str(rundir), "--data-root", str(data), "--mountpoint", str(mnt),
                          "--log-dir", str(tmp_path)], stdout=subprocess.PIPE, text=True)
    try:
        line = p.stdout.readline()
        assert line.startswith("sysbox: ready"), line
        assert _ping(str(rundir / "mgr.sock")) and _ping(str(rundir / "fs.sock"))
        assert os.path.isdir(mnt) and not os.path.ismount(mnt)  # the base of the per-container connections
        fs_pid = int((rundir / "fs.pid").read_text())
        p.send_signal(signal.SIGTERM)
        assert p.wait(60) == 0
        assert not os.path.ismount(mnt) and not (rundir / "mgr.sock").exists()
        assert not os.path.exists(f"/proc/{fs_pid}")
    finally:
        if p.poll() is None:
            p.kill()
            p.wait(10)


def test_daemon_exits_when_a_child_dies(tmp_path):
    rundir = tmp_path / "run"
    p = subprocess.Popen([SYSBOX, "daemon", "--run-dir", str(rundir), "--data-root", str(tmp_path / "d"),
                          "--mountpoint", str(tmp_path / "m"), "--log-dir", str(tmp_path)],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert p.stdout.readline().startswith("sysbox: ready")
        mgr_pid = int((rundir / "mgr.pid").read_text())
        os.kill(mgr_pid, signal.SIGKILL)
        assert p.wait(60) == 1
        assert "sysbox-mgr exited" in p.stderr.read()
        assert not os.path.ismount(tmp_path / "m")  # sysbox-fs was stopped too
    finally:
        if p.poll() is None:
            p.kill()
            p.wait(10)
