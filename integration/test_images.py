"""Local images: cached, reproducible, importable tarballs; clear failure without a mirror."""

from __future__ import annotations

import json
import os
import tarfile

import pytest

from integration.conftest import CACHE, SYSBOX, run
from sysbox import images


def test_busybox_image_layout(busybox_rootfs):
    assert os.access(os.path.join(busybox_rootfs, "bin/busybox"), os.X_OK)
    assert os.readlink(os.path.join(busybox_rootfs, "bin/sh")) == "busybox"
    meta = images.cached("busybox", CACHE)
    with tarfile.open(meta["tarball"]) as tar:
        names = tar.getnames()
        member = tar.getmember("./bin/busybox")
    assert "./etc/passwd" in names and member.uid == 0 and member.mtime == images.EPOCH


def test_busybox_rebuild_is_reproducible_and_cached(tmp_path):
    cache = str(tmp_path / "cache")
    first = run([SYSBOX, "image", "build", "--cache", cache, "busybox"])
    assert first.returncode == 0, first.stderr
    meta1 = json.loads(open(os.path.join(cache, "busybox/image.json")).read())
    again = run([SYSBOX, "image", "build", "--cache", cache, "busybox"])
    assert "already built" in again.stderr and "reusing" in again.stderr
    forced = run([SYSBOX, "image", "build", "--cache", cache, "--force", "busybox"])
    assert forced.returncode == 0
    meta2 = json.loads(open(os.path.join(cache, "busybox/image.json")).read())
    assert meta1["tar_sha256"] == meta2["tar_sha256"]
    assert sorted(os.listdir(cache)) == [".busybox.lock", "busybox"]  # no half-built leftovers
    assert meta2["docker_archive"].endswith("busybox.docker.tar")
    with tarfile.open(meta2["docker_archive"]) as tar:
        manifest = json.load(tar.extractfile("manifest.json"))
    assert manifest[0]["RepoTags"] == ["local/busybox:latest"] and len(manifest[0]["Layers"]) == 1


def test_unreachable_mirror_fails_clearly(tmp_path):
    cache = str(tmp_path / "cache")
    out = run([SYSBOX, "image", "build", "--cache", cache, "--mirror", "http://127.0.0.1:9/debian",
               "debian-systemd"])
    assert out.returncode == 1
    last = out.stderr.strip().splitlines()[-1]
    assert last.startswith("sysbox: cannot reach the Debian mirror http://127.0.0.1:9/debian")
    assert "--mirror" in last
    assert [n for n in os.listdir(cache) if not n.endswith(".lock")] == []


def test_unknown_image_name(tmp_path):
    out = run([SYSBOX, "image", "build", "--cache", str(tmp_path), "fedora"])
    assert out.returncode == 1
    assert out.stderr.strip() == "sysbox: unknown image 'fedora'; known: busybox, debian-systemd"


@pytest.mark.slow
def test_debian_systemd_image():
    meta = images.build("debian-systemd", cache=CACHE)
    root = meta["rootfs"]
    for path in ("lib/systemd/systemd", "usr/sbin/dockerd", "usr/bin/containerd", "usr/sbin/runc",
                 "usr/bin/systemctl", "usr/bin/dbus-daemon", "bin/ip", "bin/ps"):
        assert os.path.exists(os.path.join(root, path)), path
    assert os.readlink(os.path.join(root, "sbin/init")).endswith("systemd")
    assert os.path.getsize(os.path.join(root, "etc/machine-id")) == 0
    with tarfile.open(meta["tarball"]) as tar:
        first = tar.next()
    assert first is not None and first.name == "."
    out = run([SYSBOX, "image", "path", "--cache", CACHE, "--tarball", "debian-systemd"])
    assert out.stdout.strip() == meta["tarball"]


def test_image_path_names_each_artifact(busybox_rootfs):
    meta = images.cached("busybox", CACHE)
    for flag, key in (([], "rootfs"), (["--tarball"], "tarball"), (["--archive"], "docker_archive")):
        out = run([SYSBOX, "image", "path", *flag, "--cache", CACHE, "busybox"])
        assert out.returncode == 0 and out.stdout.strip() == meta[key] and os.path.exists(meta[key])
    both = run([SYSBOX, "image", "path", "--tarball", "--archive", "busybox"])
    assert both.returncode == 2 and "not allowed with argument" in both.stderr
