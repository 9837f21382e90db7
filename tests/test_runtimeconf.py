"""`sysbox install containerd|crio` on config files: valid TOML, nothing else changed, reversible."""

from __future__ import annotations

import tomllib

import pytest

from sysbox import runtimeconf
from sysbox.errors import SysboxError

BIN = "/opt/sysbox/bin/sysbox-runc"
DEBIAN = '''version = 2

[plugins]
  [plugins."io.containerd.grpc.v1.cri"]
    [plugins."io.containerd.grpc.v1.cri".cni]
      bin_dir = "/usr/lib/cni"
      conf_dir = "/etc/cni/net.d"
  [plugins."io.containerd.internal.v1.opt"]
    path = "/var/lib/containerd/opt"
'''


def handler(path, plugin="io.containerd.grpc.v1.cri", name="sysbox-runc"):
    data = tomllib.loads(path.read_text())
    return data["plugins"][plugin]["containerd"]["runtimes"][name]


def test_debian_default_gets_the_handler_and_keeps_the_rest(tmp_path):
    cfg = tmp_path / "config.toml"
    cfg.write_text(DEBIAN)
    runtimeconf.install_containerd(BIN, str(cfg))
    h = handler(cfg)
    assert h == {"runtime_type": "io.containerd.runc.v2", "options": {"BinaryName": BIN}}
    data = tomllib.loads(cfg.read_text())
    assert data["plugins"]["io.containerd.grpc.v1.cri"]["cni"]["bin_dir"] == "/usr/lib/cni"
    assert cfg.read_text().startswith(DEBIAN)
    assert (tmp_path / "config.toml.sysbox-backup").read_text() == DEBIAN
    # a runtimes table replaces containerd's built-in list: the default runc must stay declared,
    # or the CRI plugin refuses to load (found by integration/test_cri.py)
    runtimes = data["plugins"]["io.containerd.grpc.v1.cri"]["containerd"]["runtimes"]
    assert runtimes["runc"] == {"runtime_type": "io.containerd.runc.v2"}


def test_existing_runtimes_are_left_alone(tmp_path):
    cfg = tmp_path / "config.toml"
    text = ('version = 2\n[plugins."io.containerd.grpc.v1.cri".containerd]\n  default_runtime_name = "crun"\n'
            '[plugins."io.containerd.grpc.v1.cri".containerd.runtimes.crun]\n  runtime_type = "io.containerd.runc.v2"\n'
            '  [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.crun.options]\n    BinaryName = "crun"\n')
    cfg.write_text(text)
    runtimeconf.install_containerd(BIN, str(cfg))
    runtimes = tomllib.loads(cfg.read_text())["plugins"]["io.containerd.grpc.v1.cri"]["containerd"]["runtimes"]
    assert sorted(runtimes) == ["crun", "sysbox-runc"]
    assert runtimes["crun"]["options"]["BinaryName"] == "crun"


def test_install_is_idempotent_and_uninstall_restores_the_bytes(tmp_path):
    cfg = tmp_path / "config.toml"
    cfg.write_text(DEBIAN)
    runtimeconf.install_containerd(BIN, str(cfg))
    once = cfg.read_text()
    runtimeconf.install_containerd(BIN, str(cfg))
    assert cfg.read_text() == once
    runtimeconf.install_containerd("/other/sysbox-runc", str(cfg))  # a new path replaces ours
    assert handler(cfg)["options"]["BinaryName"] == "/other/sysbox-runc"
    assert cfg.read_text().count(runtimeconf.BEGIN) == 1
    runtimeconf.uninstall_containerd(str(cfg))
    assert cfg.read_text() == DEBIAN


def test_missing_file_becomes_a_version_2_config(tmp_path):
    cfg = tmp_path / "etc" / "containerd" / "config.toml"
    runtimeconf.install_containerd(BIN, str(cfg), handler="sysbox")
    assert tomllib.loads(cfg.read_text())["version"] == 2
    assert handler(cfg, name="sysbox")["options"]["BinaryName"] == BIN


@pytest.mark.parametrize("text,plugin", [
    ('[plugins.cri]\n  sandbox_image = "pause:3.6"\n', "cri"),
    ('version = 3\n', "io.containerd.cri.v1.runtime"),
])
def test_schema_versions_1_and_3(tmp_path, text, plugin):
    cfg = tmp_path / "config.toml"
    cfg.write_text(text)
    runtimeconf.install_containerd(BIN, str(cfg))
    assert handler(cfg, plugin)["options"]["BinaryName"] == BIN


@pytest.mark.parametrize("text,msg", [
    (DEBIAN + '[plugins."io.containerd.grpc.v1.cri".containerd.runtimes.sysbox-runc]\n  runtime_type = "x"\n',
     "already defined outside sysbox's block"),
    ('version = 2\n[plugins."io.containerd.grpc.v1.cri".containerd]\n  runtimes = { runc = { runtime_type = "x" } }\n',
     "would make it invalid"),
    ("version = 2\n[plugins\n", "invalid TOML"),
    ("version = 7\n", "version = 7"),
])
def test_refusals_leave_the_file_untouched(tmp_path, text, msg):
    cfg = tmp_path / "config.toml"
    cfg.write_text(text)
    with pytest.raises(SysboxError, match=msg) as e:
        runtimeconf.install_containerd(BIN, str(cfg))
    assert "\n" not in str(e.value)
    assert cfg.read_text() == text
    assert sorted(p.name for p in tmp_path.iterdir()) == ["config.toml"]


def test_crio_dropin(tmp_path):
    runtimeconf.install_crio(BIN, str(tmp_path / "crio.conf.d"))
    path = tmp_path / "crio.conf.d" / "99-sysbox.conf"
    data = tomllib.loads(path.read_text())
    assert data["crio"]["runtime"]["runtimes"]["sysbox-runc"] == {"runtime_path": BIN, "runtime_type": "oci"}
    runtimeconf.uninstall_crio(str(tmp_path / "crio.conf.d"))
    assert not path.exists()
