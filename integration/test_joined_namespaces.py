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


def _sysctls(bundle: str, values: dict[str, str]) -> None:
    path = os.path.join(bundle, "config.json")
    with open(path) as f:
        spec = json.load(f)
    spec["linux"]["sysctl"] = values
    with open(path, "w") as f:
        json.dump(spec, f)


def _host_read(netns: str, knob: str) -> str:
    name = os.path.basename(netns)
    return subprocess.run(["ip", "netns", "exec", name, "cat", "/proc/sys/" + knob.replace(".", "/")],
                          capture_output=True, text=True, check=True).stdout.strip()


def test_sysctls_of_a_joined_netns_are_set_before_the_container_starts(rt, make_bundle, cid, netns):
    """A pod's securityContext.sysctls, podman's default_sysctls: runc could not write them from
    inside the container's user namespace (EACCES); sysbox-runc writes them in that netns."""
    bundle = make_bundle(["sh", "-c", "cat /proc/sys/net/ipv4/ip_unprivileged_port_start "
                                      "/proc/sys/net/ipv4/ping_group_range /proc/sys/kernel/shmmni; "
                                      "echo 99 > /proc/sys/net/ipv4/ip_unprivileged_port_start || echo refused"])
    _join(bundle, network=netns)
    _sysctls(bundle, {"net.ipv4.ip_unprivileged_port_start": "100", "net.ipv4.ping_group_range": "0 2147483647",
                      "kernel.shmmni": "2048"})  # the IPC namespace is the container's own: runc sets it
    out = rt("run", "--bundle", bundle, cid)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.split("\n")
    assert lines[0] == "100" and lines[1].split() == ["0", "2147483647"], out.stdout
    assert lines[2] == "2048"
    assert lines[3] == "refused"  # later writes from inside get the kernel's answer for the caller
    assert _host_read(netns, "net.ipv4.ip_unprivileged_port_start") == "100"
    assert open("/proc/sys/net/ipv4/ip_unprivileged_port_start").read().strip() != "100"  # the host's own


def test_a_bad_sysctl_value_for_a_joined_netns_fails_in_one_line_and_leaks_nothing(rt, make_bundle, cid, netns):
    bundle = make_bundle(["true"])
    _join(bundle, network=netns)
    _sysctls(bundle, {"net.ipv4.ip_unprivileged_port_start": "not-a-number"})
    out = rt("create", "--bundle", bundle, cid)
    assert out.returncode == 1 and out.stderr.count("\n") == 1
    assert "linux.sysctl.net.ipv4.ip_unprivileged_port_start: Invalid argument" in out.stderr
    assert cid not in rt.registered() and os.listdir(rt.root) == []


def test_exec_into_a_container_in_a_netns_it_does_not_own(rt, make_bundle, cid, netns):
    """kubectl exec into a pod, docker exec into --network host: runc 1.1 alone gets EPERM."""
    bundle = make_bundle(["sleep", "300"])
    _join(bundle, network=netns)
    assert rt("run", "-d", "--bundle", bundle, cid).returncode == 0
    plain = run_runc(rt, "exec", cid, "true")
    assert plain.returncode != 0 and "operation not permitted" in plain.stderr.lower()  # why this exists
    out = rt("exec", cid, "sh", "-c", "ls /sys/class/net; cat /proc/self/uid_map; id -u; echo oops >&2; exit 7")
    assert out.returncode == 7 and out.stderr.strip() == "oops", out.stderr
    words = out.stdout.split()
    assert "sbxdummy0" in words and words[-4:] == ["0", words[-3], "65536", "0"] and int(words[-3]) >= 1 << 24
    pid_file = os.path.join(os.path.dirname(bundle), "exec.pid")
    out = rt("exec", "--detach", "--pid-file", pid_file, cid, "sleep", "100")
    assert out.returncode == 0, out.stderr
    pid = int(open(pid_file).read())
    assert os.readlink(f"/proc/{pid}/ns/net") == os.readlink(f"/proc/{rt.state(cid)['pid']}/ns/net")
    assert os.readlink(f"/proc/{pid}/ns/user") == os.readlink(f"/proc/{rt.state(cid)['pid']}/ns/user")
    assert not [d for d in os.listdir(os.path.dirname(rt.root)) if d.startswith("exec-")]  # the copy is gone


def run_runc(rt, *args: str):
    from integration.conftest import run

    return run(["runc", "--root", rt.root, *args])
