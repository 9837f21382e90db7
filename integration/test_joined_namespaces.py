"""Containers that join namespaces made by someone else (a pod's network and IPC namespaces,
made by the CRI runtime or by the pod's first container): their sysfs and mqueue come from the
host, mounted for those namespaces, since the container's own root may not mount them."""

from __future__ import annotations

import json
import os
import subprocess

import pytest


@pytest.fixture
def netns():
    name = f"sbxjoin{os.getpid()}"
    subprocess.run(["ip", "netns", "add", name], check=True)
    try:  # the namespace goes even if setting it up fails
        subprocess.run(["ip", "-n", name, "link", "add", "sbxdummy0", "type", "veth", "peer", "name", "sbxdummy1"],
                       check=True)
        yield f"/run/netns/{name}"
    finally:
        subprocess.run(["ip", "netns", "del", name], capture_output=True)


def _join(bundle: str, **paths: str) -> None:
    path = os.path.join(bundle, "config.json")
    with open(path) as f:
        spec = json.load(f)
    for ns in spec["linux"]["namespaces"]:
        if ns["type"] in paths:
            ns["path"] = paths[ns["type"]]
    with open(path, "w") as f:
        json.dump(spec, f)


def test_joined_netns_shows_its_own_devices_in_sys(rt, make_bundle, cid, netns):
    bundle = make_bundle(["sh", "-c", "ls /sys/class/net; cat /proc/self/uid_map"])
    _join(bundle, network=netns)
    out = rt("run", "--bundle", bundle, cid)
    assert out.returncode == 0, out.stderr
    names = out.stdout.split()
    assert "sbxdummy0" in names and "lo" in names
    assert "eth0" not in names  # not the host's devices
    assert (names[-3], names[-1]) == ("0", "65536") and int(names[-2]) >= 1 << 24  # still its own userns


def test_second_container_joins_the_first_ones_ipc_and_net(rt, make_bundle, cid, netns):
    first = make_bundle(["sleep", "100"], name="first")
    _join(first, network=netns)
    assert rt("run", "-d", "--bundle", first, cid).returncode == 0
    pid = rt.state(cid)["pid"]
    second = make_bundle(["sh", "-c", "ls /sys/class/net; mount | grep -c mqueue"], name="second")
    _join(second, network=f"/proc/{pid}/ns/net", ipc=f"/proc/{pid}/ns/ipc")
    out = rt("run", "--bundle", second, cid + "b")
    assert out.returncode == 0, out.stderr
    assert "sbxdummy0" in out.stdout.split()
    assert out.stdout.split()[-1] == "1"  # /dev/mqueue is mounted, for the joined IPC namespace


def test_joining_a_missing_namespace_is_one_line(rt, make_bundle, cid):
    bundle = make_bundle(["true"])
    _join(bundle, network="/run/netns/no-such-netns")
    out = rt("run", "--bundle", bundle, cid)
    assert out.returncode == 1
    assert "linux.namespaces: network namespace /run/netns/no-such-netns" in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1, out.stderr
