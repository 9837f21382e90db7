"""`sysbox run`'s options as spec transforms: pure functions on the image's spec dict."""

import pytest

from sysbox.devvm import vmspec
from sysbox.devvm.transfer import _member_path, parse
from sysbox.errors import SysboxError

IMAGE_SPEC = {"process": {"args": ["/sbin/init"], "env": ["PATH=/usr/bin", "container=docker"], "terminal": True},
              "linux": {"namespaces": [{"type": "pid"}, {"type": "network", "path": "/proc/1/ns/net"}]}}


def meta(**kw):
    return {"name": "dev", "image": "img.tar", "cmd": [], "volumes": [], **kw}


def test_defaults_give_the_vm_its_name_a_netns_of_its_own_and_no_terminal():
    spec = vmspec.apply(IMAGE_SPEC, meta())
    assert spec["hostname"] == "dev" and spec["process"]["terminal"] is False
    assert spec["linux"]["namespaces"] == [{"type": "pid"}, {"type": "network"}]  # never the host's
    assert "resources" not in spec["linux"]
    assert IMAGE_SPEC["process"]["terminal"] is True  # the image's spec is not changed


def test_limits_env_hostname_and_volumes():
    spec = vmspec.apply(IMAGE_SPEC, meta(memory=512 << 20, cpus=1.5, pids=100, hostname="box", cmd=["sh"],
                                         env=["PATH=/bin", "A=1"],
                                         volumes=[{"source": "/src", "destination": "/src", "readonly": True}]))
    res = spec["linux"]["resources"]
    assert res == {"memory": {"limit": 512 << 20}, "cpu": {"quota": 150000, "period": 100000}, "pids": {"limit": 100}}
    assert spec["process"]["env"] == ["container=docker", "PATH=/bin", "A=1"]  # -e wins over the image
    assert spec["process"]["args"] == ["sh"] and spec["hostname"] == "box"
    assert spec["mounts"] == [{"destination": "/src", "type": "bind", "source": "/src", "options": ["rbind", "ro"]}]


def test_cpuset_joins_the_cpu_quota():
    spec = vmspec.apply(IMAGE_SPEC, meta(cpus=0.5, cpuset="0"))
    assert spec["linux"]["resources"]["cpu"] == {"quota": 50000, "period": 100000, "cpus": "0"}
    assert vmspec.parse_cpuset("0-1,3", online=4) == "0-1,3"
    for bad, msg in (("1-0", "expected CPU numbers"), ("a", "expected CPU numbers"), ("4", "this host has CPUs 0-3")):
        with pytest.raises(SysboxError, match=msg):
            vmspec.parse_cpuset(bad, online=4)


def test_an_image_without_a_command_needs_one():
    with pytest.raises(SysboxError, match="no command in the image"):
        vmspec.apply({"process": {}, "linux": {}}, meta())


@pytest.mark.parametrize("value,expected", [("512m", 512 << 20), ("2g", 2 << 30), ("7000000", 7000000),
                                            ("64MB", 64 << 20), ("1t", 1 << 40)])
def test_memory_sizes(value, expected):
    assert vmspec.parse_memory(value) == expected


@pytest.mark.parametrize("fn,value,msg", [
    (vmspec.parse_memory, "1k", "--memory 1k: the minimum is 6m"),
    (vmspec.parse_memory, "-5m", "--memory -5m: expected a size"),
    (vmspec.parse_cpus, "0", "--cpus 0: expected a number"),
    (vmspec.parse_cpus, "abc", "--cpus abc: expected a number"),
    (vmspec.parse_pids, "-1", "--pids-limit -1"),
    (vmspec.parse_hostname, "a" * 64, "--hostname"),
    (vmspec.parse_hostname, "under_score", "--hostname"),
    (vmspec.parse_restart, "on-failure", "--restart on-failure: expected one of no, always"),
])
def test_bad_values_name_their_flag(fn, value, msg):
    with pytest.raises(SysboxError, match=msg):
        fn(value)


def test_env_takes_the_hosts_value_for_a_bare_name():
    assert vmspec.parse_env(["A=1", "HOME", "MISSING", "B=x=y"], {"HOME": "/root"}) == ["A=1", "HOME=/root", "B=x=y"]
    with pytest.raises(SysboxError, match="-e =x"):
        vmspec.parse_env(["=x"], {})


def test_systemd_is_recognised_by_its_init():
    assert vmspec.is_systemd({"process": {"args": ["/sbin/init"]}})
    assert vmspec.is_systemd({"process": {"args": ["/lib/systemd/systemd", "--log-level=debug"]}})
    assert not vmspec.is_systemd({"process": {"args": ["sh", "-c", "init"]}})


@pytest.mark.parametrize("arg,expected", [("vm:/etc", ("vm", "/etc")), ("/tmp/a:b", (None, "/tmp/a:b")),
                                          ("./vm:/x", (None, "./vm:/x")), ("plain", (None, "plain")),
                                          ("bad name:/x", (None, "bad name:/x"))])
def test_cp_arguments(arg, expected):
    assert parse(arg) == expected


@pytest.mark.parametrize("name,expected", [("data", "out"), ("data/a/b", "out/a/b"), ("./data/x", "out/x"),
                                           ("data/../x", None), ("/data/x", None), ("other/x", None), ("", None)])
def test_cp_out_keeps_every_member_under_the_top_it_asked_for(name, expected):
    assert _member_path(name, "data", "out") == expected
