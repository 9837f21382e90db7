"""vagrant/Vagrantfile is valid for its libvirt provider (Debian's vagrant and vagrant-libvirt).

No VM is started here (no nested virtualisation on the development host); the VMs run the
README's test command and the crun tests on cgroup v2 when brought up elsewhere.
"""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest

VAGRANT_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "vagrant")


@pytest.mark.skipif(not shutil.which("vagrant"), reason="vagrant is not installed (apt-get install vagrant)")
def test_vagrantfile_validates_with_libvirt(tmp_path):
    env = {**os.environ, "VAGRANT_DEFAULT_PROVIDER": "libvirt", "VAGRANT_HOME": str(tmp_path / "home"),
           "VAGRANT_DOTFILE_PATH": str(tmp_path / "dot")}
    out = subprocess.run(["vagrant", "validate"], cwd=VAGRANT_DIR, env=env, capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "Vagrantfile validated successfully" in out.stdout
    status = subprocess.run(["vagrant", "status"], cwd=VAGRANT_DIR, env=env, capture_output=True, text=True,
                            timeout=300)
    assert "debian12" in status.stdout and "ubuntu2404" in status.stdout, status.stdout + status.stderr


def test_vagrantfile_names_both_distros_and_the_test_command():
    text = open(os.path.join(VAGRANT_DIR, "Vagrantfile")).read()
    assert '"debian/bookworm64"' in text and '"generic/ubuntu2404"' in text
    assert "make test" in text and "SYSBOX_LOWER_RUNTIME=crun" in text
