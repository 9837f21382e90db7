"""deploy/k8s: the manifests pass Kubernetes' schemas (strict), and the node installer script
configures containerd and CRI-O correctly when run against a directory standing in for a node."""

from __future__ import annotations

import os
import subprocess
import sys
import tomllib

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
K8S = os.path.join(ROOT, "deploy", "k8s")
SYSBOX = os.path.join(os.path.dirname(sys.executable), "sysbox")
MANIFESTS = sorted(f for f in os.listdir(K8S) if f.endswith(".yaml"))
HOST_BIN = "/opt/sysbox/.venv/bin/sysbox-runc"


@pytest.mark.parametrize("name", MANIFESTS)
def test_manifest_is_valid_kubernetes(name):
    out = subprocess.run([os.path.join(os.path.dirname(sys.executable), "kubernetes-validate"), "--strict",
                          "-k", "1.30.0", os.path.join(K8S, name)], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "INFO" in out.stdout and "ERROR" not in out.stdout


def test_runtimeclass_handler_matches_the_installed_handler():
    text = open(os.path.join(K8S, "runtimeclass.yaml")).read()
    assert "handler: sysbox-runc" in text
    assert "runtimeClassName: sysbox-runc" in open(os.path.join(K8S, "pod-systemd.yaml")).read()


def install(host: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "HOST_ROOT": host, "SYSBOX": SYSBOX, "SYSBOX_INSTALL_SKIP": "setup systemd restart label"}
    return subprocess.run([os.path.join(K8S, "install-on-node.sh")], env=env, capture_output=True, text=True,
                          timeout=120)


def test_installer_configures_containerd(tmp_path):
    host = tmp_path / "node"
    (host / "etc" / "containerd").mkdir(parents=True)
    cfg = host / "etc" / "containerd" / "config.toml"
    cfg.write_text('version = 2\n[plugins."io.containerd.grpc.v1.cri".cni]\n  bin_dir = "/usr/lib/cni"\n')
    for _ in range(2):  # a restarted installer pod finds everything done
        out = install(str(host))
        assert out.returncode == 0, out.stderr
    data = tomllib.loads(cfg.read_text())
    rt = data["plugins"]["io.containerd.grpc.v1.cri"]["containerd"]["runtimes"]["sysbox-runc"]
    assert rt == {"runtime_type": "io.containerd.runc.v2", "options": {"BinaryName": HOST_BIN}}
    assert data["plugins"]["io.containerd.grpc.v1.cri"]["cni"]["bin_dir"] == "/usr/lib/cni"
    assert (host / "opt" / "sysbox" / "sysbox" / "runc" / "main.py").is_file()
    assert (host / "opt" / "sysbox" / "scripts" / "setup.sh").is_file()
    assert not (host / "opt" / "sysbox" / ".git").exists()
    assert (host / "run" / "sysbox" / "installed").read_text().strip() == "containerd"
    # containerd's own parser reads the result
    dump = subprocess.run(["containerd", "--config", str(cfg), "config", "dump"], capture_output=True, text=True,
                          timeout=60)
    assert dump.returncode == 0, dump.stderr
    assert f'BinaryName = "{HOST_BIN}"' in dump.stdout


def test_installer_prefers_crio_when_present(tmp_path):
    host = tmp_path / "node"
    (host / "etc" / "crio").mkdir(parents=True)
    (host / "etc" / "containerd").mkdir(parents=True)
    out = install(str(host))
    assert out.returncode == 0, out.stderr
    data = tomllib.loads((host / "etc" / "crio" / "crio.conf.d" / "99-sysbox.conf").read_text())
    assert data["crio"]["runtime"]["runtimes"]["sysbox-runc"]["runtime_path"] == HOST_BIN
    assert not (host / "etc" / "containerd" / "config.toml").exists()


def test_installer_without_a_cri_runtime_fails_clearly(tmp_path):
    host = tmp_path / "node"
    host.mkdir()
    out = install(str(host))
    assert out.returncode == 1
    assert "neither CRI-O nor containerd found" in out.stderr
