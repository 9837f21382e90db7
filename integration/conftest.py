"""Fixtures shared by the system tests: real images, real runc, isolated state, leak checks.

Every container a test creates lives under a per-test runc --root, and the fixture's
finalizer force-deletes whatever is left there, even when the test failed.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import uuid

import pytest

from sysbox import images
from sysbox.oci.bundle import default_spec, write_bundle

VENV_BIN = os.path.dirname(sys.executable)
SYSBOX_RUNC = os.path.join(VENV_BIN, "sysbox-runc")
SYSBOX = os.path.join(VENV_BIN, "sysbox")
CACHE = os.environ.get("SYSBOX_IMAGE_CACHE", images.DEFAULT_CACHE)


def run(cmd: list[str], timeout: float = 60, **kw) -> subprocess.CompletedProcess:
    """Run a command and capture its output through files, not pipes.

    `runc create` and `run -d` pass their stdio to the container, which keeps a pipe open for
    its whole life; files let us wait for the runtime's exit instead of the container's.
    """
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        proc = subprocess.run(cmd, stdin=subprocess.DEVNULL, stdout=out, stderr=err,
                              timeout=timeout, **kw)
        out.seek(0)
        err.seek(0)
        return subprocess.CompletedProcess(cmd, proc.returncode, out.read().decode(errors="replace"),
                                           err.read().decode(errors="replace"))


def mounts() -> set[str]:
    """Mount points of the host mount namespace, for before/after leak checks."""
    with open("/proc/self/mountinfo") as f:
        return {line.split()[4] for line in f}


def cgroup_exists(name: str) -> list[str]:
    """Cgroup directories called `name` directly under any hierarchy root."""
    base = "/sys/fs/cgroup"
    found = []
    for h in os.listdir(base):
        if os.path.isdir(os.path.join(base, h, name)):
            found.append(os.path.join(base, h, name))
    if os.path.isdir(os.path.join(base, name)):
        found.append(os.path.join(base, name))
    return found


@pytest.fixture(scope="session")
def busybox_rootfs() -> str:
    return images.build("busybox", cache=CACHE)["rootfs"]


@pytest.fixture(scope="session")
def runc_default_spec() -> dict:
    return default_spec()


@pytest.fixture
def runc_root(tmp_path):
    """A private runc --root; anything left in it is force-deleted afterwards."""
    root = tmp_path / "runc-root"
    root.mkdir()
    yield str(root)
    listed = run(["runc", "--root", str(root), "list", "-q"])
    for cid in listed.stdout.split():
        run(["runc", "--root", str(root), "delete", "--force", cid])


@pytest.fixture
def make_bundle(tmp_path, busybox_rootfs, runc_default_spec):
    """make_bundle(args, name=...) -> bundle dir using the cached busybox rootfs, read-only."""

    def make(args: list[str], name: str = "bundle", rootfs: str | None = None, **kw) -> str:
        bundle = str(tmp_path / name)
        kw.setdefault("readonly", True)
        write_bundle(bundle, rootfs or busybox_rootfs, args, base=runc_default_spec, **kw)
        return bundle

    return make


@pytest.fixture
def cid() -> str:
    return "t-" + uuid.uuid4().hex[:12]


def state(runtime: str, root: str, cid: str) -> dict:
    out = run([runtime, "--root", root, "state", cid])
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)
