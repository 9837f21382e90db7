"""The runc-compatible flag parser: the command lines containerd, dockerd and podman send."""

import pytest

from sysbox.runc import cli


def test_containerd_shim_create_line():
    argv = ["--root", "/run/containerd/runc/k8s.io", "--log", "/x/log.json", "--log-format", "json",
            "--systemd-cgroup", "create", "--bundle", "/b", "--pid-file", "/b/init.pid",
            "--console-socket", "/tmp/c.sock", "ctr1"]
    inv = cli.parse(argv)
    assert inv.command == "create"
    assert inv.globals == {"root": "/run/containerd/runc/k8s.io", "log": "/x/log.json",
                           "log-format": "json", "systemd-cgroup": True}
    assert inv.flags["bundle"] == "/b" and inv.flags["pid-file"] == "/b/init.pid"
    assert inv.container_id == "ctr1"
    assert inv.lower_argv() == argv


def test_equals_and_single_dash_and_aliases():
    inv = cli.parse(["-root=/r", "run", "-b=/b", "-d", "--keep=false", "c"])
    assert inv.globals["root"] == "/r"
    assert inv.flags == {"bundle": "/b", "detach": True, "keep": False}


def test_sysbox_globals_are_not_passed_down():
    inv = cli.parse(["--lower-runtime", "/usr/bin/crun", "--no-sysbox-mgr", "--root", "/r", "state", "c"])
    assert inv.globals["lower-runtime"] == "/usr/bin/crun"
    assert inv.lower_argv() == ["--root", "/r", "state", "c"]


def test_exec_keeps_command_args_verbatim():
    inv = cli.parse(["exec", "-e", "A=1", "--env", "B=2", "-t", "c", "sh", "-c", "ls -l"])
    assert inv.flags["env"] == ["A=1", "B=2"] and inv.flags["tty"] is True
    assert inv.args == ["c", "sh", "-c", "ls -l"]


def test_kill_signal_positional():
    inv = cli.parse(["kill", "--all", "c", "KILL"])
    assert inv.flags == {"all": True} and inv.args == ["c", "KILL"]


@pytest.mark.parametrize("argv, message", [
    (["create", "--bogus", "c"], "create: flag provided but not defined: --bogus"),
    (["--nope", "state", "c"], "flag provided but not defined: --nope"),
    (["create", "--bundle"], "create: flag needs an argument: --bundle"),
    (["frobnicate"], "No help topic for 'frobnicate'"),
    (["state"], "state: container id cannot be empty"),
    (["checkpoint", "c"], "checkpoint: checkpoint/restore is not supported by system containers"),
    (["delete", "--force=maybe", "c"], "delete: invalid boolean value 'maybe' for flag -force"),
])
def test_usage_errors(argv, message):
    with pytest.raises(cli.UsageError) as e:
        cli.parse(argv)
    assert str(e.value) == message


def test_every_command_known_to_containerd_parses():
    for command in ("create", "start", "run", "state", "kill", "delete", "exec", "ps", "pause",
                    "resume", "update", "events"):
        assert cli.parse([command, "c"]).command == command
    for command in ("features", "list", "spec"):
        assert cli.parse([command]).command == command


@pytest.mark.parametrize("argv", [
    ["exec", "--process", "/b/p.json", "-d", "c"],
    ["exec", "-p=/b/p.json", "--detach", "c"],
    ["exec", "--pid-file", "/x", "--process=/b/p.json", "c"],
])
def test_replace_flag_keeps_everything_else(argv):
    inv = cli.parse(argv)
    inv.replace_flag("process", "/proc/self/fd/7")
    lowered = inv.lower_argv()
    assert "--process=/proc/self/fd/7" in lowered and "/b/p.json" not in " ".join(lowered)
    assert lowered[-1] == "c" and inv.flags["process"] == "/proc/self/fd/7"
    assert len(lowered) == len(argv) + 1 - (1 if any("=" in a and "p.json" in a for a in argv) else 2)
