"""sysbox-runc speaks runc's command line: checked against runc itself on the same bundle."""

from __future__ import annotations

import json
import os
import time

import pytest

from integration.conftest import SYSBOX_RUNC, mounts, run


def test_run_busybox_in_foreground(make_bundle, rt, cid):
    bundle = make_bundle(["sh", "-c", "echo hello-$(hostname); exit 3"], hostname="bb")
    out = rt("run", "--bundle", bundle, cid)
    assert out.stdout.strip() == "hello-bb"
    assert out.returncode == 3  # the container's exit status, like runc
    assert rt("state", cid).returncode == 1  # run without --keep deletes, like runc
    assert cid not in rt.registered()


def _lifecycle(prefix: list[str], bundle: str, cid: str) -> list:
    """create/start/state/kill/delete; returns what a caller would observe at each step."""
    def call(*args: str):
        return run(prefix + list(args))

    def state(c: str) -> dict:
        return json.loads(call("state", c).stdout)

    seen = []
    r = call("create", "--bundle", bundle, cid)
    seen.append(("create", r.returncode))
    st = state(cid)
    seen.append(("state-created", st["status"], sorted(set(st) - {"annotations"}), st["pid"] > 0))
    seen.append(("start", call("start", cid).returncode))
    seen.append(("state-running", state(cid)["status"]))
    ps = call("ps", "--format", "json", cid)
    seen.append(("ps", ps.returncode, len(json.loads(ps.stdout)) >= 1))
    seen.append(("kill", call("kill", cid, "KILL").returncode))
    for _ in range(100):
        if state(cid)["status"] == "stopped":
            break
        time.sleep(0.05)
    seen.append(("state-stopped", state(cid)["status"]))
    seen.append(("delete", call("delete", cid).returncode))
    gone = call("state", cid)
    seen.append(("state-gone", gone.returncode, gone.stdout))
    seen.append(("delete-again", call("delete", cid).returncode))
    seen.append(("kill-gone", call("kill", cid).returncode))
    return seen


def test_lifecycle_matches_runc(make_bundle, rt, cid):
    bundle = make_bundle(["sleep", "300"])
    ours = _lifecycle(rt.argv(), bundle, cid)
    theirs = _lifecycle(["runc", "--root", rt.root], bundle, cid + "-runc")
    assert ours == theirs
    assert ours[1][1] == "created" and ours[3][1] == "running" and ours[6][1] == "stopped"
    assert ours[8][1] != 0  # state of a deleted container fails


def test_version_keeps_runcs_lines_first_then_names_sysbox():
    """Tools parse runc's first lines (`runc version`, `commit:`, `spec:`)."""
    ours, theirs = run([SYSBOX_RUNC, "--version"]), run(["runc", "--version"])
    assert ours.returncode == 0 and theirs.returncode == 0
    lines, runc_lines = ours.stdout.splitlines(), theirs.stdout.splitlines()
    assert lines[:len(runc_lines)] == runc_lines and lines[0].startswith("runc version ")
    assert lines[len(runc_lines)].startswith("sysbox-runc version ")


RUNC_COMMANDS = ["checkpoint", "restore", "create", "run", "start", "state", "kill", "delete", "exec", "ps",
                 "pause", "resume", "update", "events", "features", "list", "spec"]


@pytest.mark.parametrize("command", RUNC_COMMANDS)
@pytest.mark.parametrize("flag", ["-h", "--help"])
def test_every_subcommands_help_is_runcs(command, flag):
    ours, theirs = run([SYSBOX_RUNC, command, flag]), run(["runc", command, flag])
    assert (ours.returncode, ours.stdout) == (theirs.returncode, theirs.stdout), ours.stderr


def test_exec_and_events_pass_through(make_bundle, rt, cid):
    bundle = make_bundle(["sleep", "300"])
    assert rt("run", "-d", "--bundle", bundle, cid).returncode == 0
    out = rt("exec", "-e", "X=42", cid, "sh", "-c", "echo $X")
    assert out.stdout.strip() == "42"
    ev = rt("events", "--stats", cid)
    assert ev.returncode == 0 and json.loads(ev.stdout)["type"] == "stats"
    assert rt("list", "-q").stdout.split() == [cid]
    assert rt("delete", "-f", cid).returncode == 0
    assert cid not in rt.registered()


def test_missing_lower_runtime_is_clear(make_bundle, runc_root, cid):
    out = run([SYSBOX_RUNC, "--lower-runtime", "/nonexistent/runc", "--root", runc_root, "state", cid])
    assert out.returncode == 1
    assert out.stderr == "sysbox-runc: lower runtime /nonexistent/runc: not an executable file\n"


@pytest.mark.parametrize("fmt", ["json", "text"])
def test_errors_reach_the_log_file(tmp_path, rt, runc_root, cid, fmt):
    log = tmp_path / "log"
    out = rt("--log", str(log), "--log-format", fmt, "create", "--bundle", str(tmp_path / "missing"), cid)
    assert out.returncode == 1
    text = log.read_text()
    if fmt == "json":
        entry = json.loads(text.splitlines()[-1])
        assert entry["level"] == "error" and "not a directory" in entry["msg"]
        # RFC 3339, as containerd-shim-runc-v2 parses it (a +0000 offset made the shim drop the error)
        import datetime

        assert entry["time"].endswith("Z") and datetime.datetime.fromisoformat(entry["time"].replace("Z", "+00:00"))
    else:
        assert "level=error" in text and "not a directory" in text
    assert not os.path.exists(os.path.join(runc_root, cid))


def test_delete_without_our_flags_finds_the_state_through_runc(make_bundle, rt, cid):
    """podman's cleanup (conmon's exit command) calls `delete` without --runtime-flag options."""
    assert rt("create", "--bundle", make_bundle(["sleep", "100"]), cid).returncode == 0
    assert cid in rt.registered() and cid in rt.fs_registered()
    from sysbox.runc import state

    cdir = state.container_dir({"root": rt.root, "sysbox-state": rt.state_dir}, cid)
    assert os.path.isdir(cdir)
    env = {k: v for k, v in os.environ.items() if not k.startswith("SYSBOX_")}
    out = run([SYSBOX_RUNC, "--root", rt.root, "delete", "--force", cid], env=env)
    assert out.returncode == 0, out.stderr
    assert not os.path.exists(cdir)
    assert cid not in rt.registered() and cid not in rt.fs_registered()
    assert not [m for m in mounts() if cid in m]


@pytest.mark.parametrize("atime", ["strictatime", "noatime", "nodiratime", "relatime"])
def test_bind_with_an_atime_option_runs_as_with_runc(make_bundle, rt, runc_root, cid, tmp_path, atime):
    """runc's remount of a bind with an atime option: locked under a user namespace (EPERM),
    so sysbox-runc keeps the source's atime flags instead, and the container runs as with runc."""
    src = tmp_path / "src"
    src.mkdir()
    (src / "f").write_text("x")
    os.chmod(tmp_path, 0o755)
    results = []
    for name, runner in (("runc", None), ("sysbox", rt)):
        bundle = make_bundle(["cat", "/mnt/f"], name=f"{name}-{atime}")
        path = os.path.join(bundle, "config.json")
        spec = json.load(open(path))
        spec["mounts"].append({"destination": "/mnt", "type": "bind", "source": str(src),
                               "options": ["rbind", atime]})
        json.dump(spec, open(path, "w"))
        out = runner("run", "--bundle", bundle, cid + name) if runner else \
            run(["runc", "--root", runc_root, "run", "--bundle", bundle, cid + name])
        results.append((out.returncode, out.stdout))
    assert results[0] == results[1] == (0, "x"), results


@pytest.mark.parametrize("prop", ["slave", "rslave", "private", "rprivate", "shared", "rshared", "unbindable"])
def test_rootfs_propagation_as_with_runc(make_bundle, rt, runc_root, cid, prop):
    """Same exit status as runc for every linux.rootfsPropagation (runc 1.1.5 itself fails on
    unbindable: its bind of the rootfs onto itself is EINVAL there), special dirs included."""
    codes = []
    for name, runner in (("runc", None), ("sysbox", rt)):
        bundle = make_bundle(["true"], name=f"{name}-{prop}")
        path = os.path.join(bundle, "config.json")
        spec = json.load(open(path))
        spec["linux"]["rootfsPropagation"] = prop
        json.dump(spec, open(path, "w"))
        out = runner("run", "--bundle", bundle, cid + name) if runner else \
            run(["runc", "--root", runc_root, "run", "--bundle", bundle, cid + name])
        codes.append(out.returncode)
    assert codes[0] == codes[1], codes
    assert cid + "sysbox" not in rt.registered()


def _caps_of(runner, runc_root: str, bundle: str, cid: str) -> list[str]:
    out = runner("run", "--bundle", bundle, cid) if runner else \
        run(["runc", "--root", runc_root, "run", "--bundle", bundle, cid])
    assert out.returncode == 0, out.stderr
    return [line for line in out.stdout.splitlines() if line.startswith("Cap")]


@pytest.mark.parametrize("uid,annotation", [(1000, None), (0, "true")])
def test_capabilities_as_the_spec_asks_like_runc(make_bundle, rt, runc_root, cid, uid, annotation):
    """Non-root processes get exactly the spec's sets; root too with io.sysbox.honor-caps."""
    wanted = ["CAP_NET_BIND_SERVICE", "CAP_KILL"]
    seen = []
    for name, runner in (("runc", None), ("sysbox", rt)):
        bundle = make_bundle(["grep", "^Cap", "/proc/self/status"], name=f"{name}-{uid}")
        path = os.path.join(bundle, "config.json")
        spec = json.load(open(path))
        spec["process"]["user"] = {"uid": uid, "gid": uid}
        spec["process"]["capabilities"] = {k: list(wanted) for k in
                                           ("bounding", "effective", "permitted", "inheritable", "ambient")}
        if annotation:
            spec.setdefault("annotations", {})["io.sysbox.honor-caps"] = annotation
        json.dump(spec, open(path, "w"))
        seen.append(_caps_of(runner, runc_root, bundle, cid + name))
    assert seen[0] == seen[1] and any(line.startswith("CapAmb:") and line.split()[1] != "0" * 16
                                      for line in seen[0]), seen


def test_root_gets_the_full_set_by_default(make_bundle, rt, runc_root, cid):
    """The deliberate difference: a system container's root has every capability (in its userns)."""
    bundle = make_bundle(["grep", "^CapEff", "/proc/self/status"])
    eff = int(_caps_of(rt, runc_root, bundle, cid)[0].split()[1], 16)
    last = int(open("/proc/sys/kernel/cap_last_cap").read())
    assert eff == (1 << (last + 1)) - 1


HOOK_KINDS = ("prestart", "createRuntime", "createContainer", "startContainer", "poststart", "poststop")


def _hooks_seen(prefix: list[str], bundle: str, cid: str, out: str) -> dict:
    """create/start/wait/state/list/delete of a bundle whose hooks save their stdin; returns
    what each hook, `state` and `list` saw, with the values that differ per run made neutral."""
    def call(*args: str):
        r = run(prefix + list(args))
        assert r.returncode == 0, (args, r.stderr)
        return r

    call("create", "--bundle", bundle, cid)
    call("start", cid)
    for _ in range(200):
        if json.loads(call("state", cid).stdout)["status"] == "stopped":
            break
        time.sleep(0.05)
    st = json.loads(call("state", cid).stdout)
    listed = [c for c in json.loads(call("list", "--format", "json").stdout) if c["id"] == cid]
    call("delete", cid)
    seen = {}
    for kind in HOOK_KINDS:
        path = os.path.join(out, kind)
        seen[kind] = json.load(open(path)) if os.path.exists(path) else None
    seen["state"], seen["list"] = st, listed[0] if listed else None
    for value in seen.values():
        if isinstance(value, dict):
            value.pop("id", None)
            value["pid"] = value.get("pid", 0) > 0
            for key in ("created", "owner", "rootfs"):
                value.pop(key, None)
    return seen


def test_hooks_state_and_list_name_the_callers_bundle(make_bundle, rt, runc_root, cid, tmp_path):
    """Every hook's stdin, `state` and `list` as with runc: the caller's bundle and annotations
    (startContainer hooks, run inside the container, are the documented exception)."""
    import shutil
    import tempfile

    results = {}
    for name, prefix in (("runc", ["runc", "--root", runc_root]), ("sysbox", rt.argv())):
        out = tempfile.mkdtemp(prefix="sysbox-hooks-")  # createContainer hooks write as the container's root
        try:
            os.chmod(out, 0o1777)
            bundle = make_bundle(["true"], name=f"{name}-hooks")
            path = os.path.join(bundle, "config.json")
            spec = json.load(open(path))
            spec.setdefault("annotations", {})["org.example.hooks"] = "yes"
            spec["mounts"].append({"destination": "/out", "type": "bind", "source": out, "options": ["rbind"]})
            spec["hooks"] = {kind: [{"path": "/bin/sh", "args": ["sh", "-c", f"cat > {out}/{kind}"]}]
                             for kind in HOOK_KINDS if kind != "startContainer"}
            # inside the container: busybox's sh, writing to the bind of the same directory
            spec["hooks"]["startContainer"] = [{"path": "/bin/sh", "args": ["sh", "-c", "cat > /out/startContainer"]}]
            json.dump(spec, open(path, "w"))
            results[name] = (bundle, _hooks_seen(prefix, bundle, cid + name, out))
        finally:
            shutil.rmtree(out, ignore_errors=True)
    (runc_bundle, theirs), (our_bundle, ours) = results["runc"], results["sysbox"]
    for kind in ("prestart", "createRuntime", "createContainer", "poststart", "poststop", "state", "list"):
        assert theirs[kind] is not None and theirs[kind]["bundle"] == runc_bundle, (kind, theirs[kind])
        assert ours[kind] is not None and ours[kind]["bundle"] == our_bundle, (kind, ours[kind])
        mine, its = dict(ours[kind]), dict(theirs[kind])
        mine.pop("bundle"), its.pop("bundle")
        assert mine == its, kind
        assert its["annotations"] == {"org.example.hooks": "yes"}
    # startContainer: the same state, but the bundle is the rewritten copy runc read
    mine, its = dict(ours["startContainer"]), dict(theirs["startContainer"])
    assert its.pop("bundle") == runc_bundle and mine.pop("bundle") != our_bundle
    assert mine == its


def _run_on_a_terminal(argv: list[str], replies: list[tuple[bytes, bytes, tuple[int, int] | None]],
                       rows_cols: tuple[int, int] = (40, 100), timeout: float = 60) -> tuple[int, bytes]:
    """Run argv with a pty of our own as its terminal (a user's shell); at each expected output,
    optionally resize the terminal, then type the reply.  Returns (exit status, all output)."""
    import fcntl
    import pty
    import select
    import struct
    import subprocess
    import termios

    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", *rows_cols, 0, 0))

    def controlling_tty() -> None:
        fcntl.ioctl(0, termios.TIOCSCTTY, 0)

    proc = subprocess.Popen(argv, stdin=slave, stdout=slave, stderr=slave, start_new_session=True,
                            preexec_fn=controlling_tty)
    os.close(slave)
    out = b""
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            if replies and replies[0][0] in out:
                _, reply, size = replies.pop(0)
                if size:
                    fcntl.ioctl(master, termios.TIOCSWINSZ, struct.pack("HHHH", *size, 0, 0))
                os.write(master, reply)
            ready, _, _ = select.select([master], [], [], 0.2)
            if ready:
                try:
                    data = os.read(master, 65536)
                except OSError:  # EIO: the runtime and everything it started closed the terminal
                    data = b""
                if not data:
                    break
                out += data
            elif proc.poll() is not None:
                break
        return proc.wait(timeout=max(1.0, deadline - time.monotonic())), out
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        os.close(master)


# runc 1.1 sizes the pty after the process starts (a first `stty size` may fail there)
TTY_SCRIPT = ("tty; until [ \"$(stty size 2>/dev/null)\" = '40 100' ]; do sleep 0.05; done; stty size; echo ready; read x; echo got-$x; "
              "until [ \"$(stty size)\" = '50 120' ]; do sleep 0.05; done; echo resized; exit 5")


@pytest.mark.parametrize("extra", [[], ["--no-pivot"], ["--debug"]])
def test_foreground_run_with_a_terminal_as_with_runc(make_bundle, rt, runc_root, cid, extra):
    """`run ID` in a shell, process.terminal true: the same terminal as runc's - a pty of the
    user's size, typed input reaching the container, resizes followed, the exit status."""
    seen = []
    for name, prefix in (("runc", ["runc", "--root", runc_root]), ("sysbox", rt.argv())):
        bundle = make_bundle(["sh", "-c", TTY_SCRIPT], name=f"{name}-tty", terminal=True)
        glob = [a for a in extra if a == "--debug"]
        flags = [a for a in extra if a != "--debug"]
        argv = prefix + glob + ["run", *flags, "--bundle", bundle, cid + name]
        status, out = _run_on_a_terminal(argv, [(b"ready", b"hello\r", None), (b"got-hello", b"", (50, 120))])
        text = out.decode(errors="replace")
        lines = text.splitlines()
        if glob:  # runc's debug lines: shown by both, then left out (when and how many depends on
            assert "DEBU" in text, text  # timing: runc logs each signal it forwards, Go's SIGURG too)
            lines = [ln for ln in text[text.index("/dev/pts/"):text.index("resized") + len("resized")].splitlines()
                     if "DEBU" not in ln]
        seen.append((status, lines))
        assert run(prefix + ["state", cid + name]).returncode != 0  # deleted after the run
    assert seen[0] == seen[1]
    assert seen[0][0] == 5 and seen[0][1][:3] == ["/dev/pts/0", "40 100", "ready"], seen[0]
    assert "got-hello" in seen[0][1] and "resized" in seen[0][1]
    assert cid + "sysbox" not in rt.registered()


KVM_GET_API_VERSION = "0xAE00"


@pytest.mark.parametrize("allowed", [True, False])
def test_devices_nodes_as_with_runc(make_bundle, rt, runc_root, cid, helper_dir, allowed):
    """linux.devices (/dev/kvm, /dev/net/tun, a fifo) are there inside, owned and moded as the
    spec says; /dev/kvm answers KVM_GET_API_VERSION when the device cgroup allows it and is
    refused (EPERM) when it does not, as with runc.  The host's nodes are untouched."""
    if not os.path.exists("/dev/kvm"):
        pytest.skip("gap: this machine has no /dev/kvm")
    host_kvm = os.stat("/dev/kvm")
    script = ("ls -ln /dev/fifo /dev/kvm /dev/net/tun | awk '{print $1, $3, $4, $5, $6}'; "
              f"/home/sysc ioctl /dev/kvm {KVM_GET_API_VERSION}; echo rc=$?")
    seen = []
    for name, runner in (("runc", None), ("sysbox", rt)):
        bundle = make_bundle(["sh", "-c", script], name=f"{name}-dev")
        path = os.path.join(bundle, "config.json")
        spec = json.load(open(path))
        spec["mounts"].append({"destination": "/home", "type": "bind", "source": helper_dir,
                               "options": ["rbind", "ro"]})
        spec["linux"]["devices"] = [
            {"path": "/dev/kvm", "type": "c", "major": 10, "minor": 232, "fileMode": 0o20660, "uid": 0, "gid": 0},
            {"path": "/dev/net/tun", "type": "c", "major": 10, "minor": 200},
            {"path": "/dev/fifo", "type": "p", "fileMode": 0o600, "uid": 1000, "gid": 1000}]
        rules = spec["linux"].setdefault("resources", {}).setdefault("devices", [{"allow": False, "access": "rwm"}])
        if allowed:
            rules.append({"allow": True, "type": "c", "major": 10, "minor": 232, "access": "rwm"})
        json.dump(spec, open(path, "w"))
        out = runner("run", "--bundle", bundle, cid + name) if runner else \
            run(["runc", "--root", runc_root, "run", "--bundle", bundle, cid + name])
        seen.append((out.returncode, out.stdout))
    assert seen[0] == seen[1], seen
    lines = seen[0][1].splitlines()
    assert [ln.split()[:3] for ln in lines[:3]] == [["prw-------", "1000", "1000"], ["crw-rw----", "0", "0"],
                                                    ["crw-rw-rw-", "0", "0"]], lines
    assert lines[1].endswith("10, 232") and lines[2].endswith("10, 200"), lines
    assert lines[3:] == (["12", "rc=0"] if allowed else ["Operation not permitted", "rc=1"]), lines
    now = os.stat("/dev/kvm")
    assert (now.st_uid, now.st_gid, now.st_mode) == (host_kvm.st_uid, host_kvm.st_gid, host_kvm.st_mode)
    assert not [m for m in mounts() if cid in m]


class _Agent:
    """A seccomp agent of the caller's own: takes the listener runc sends to listenerPath and
    answers every notification with EACCES."""

    def __init__(self, path: str) -> None:
        import socket
        import threading

        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.bind(path)
        self.sock.listen(1)
        self.sock.settimeout(30)
        self.message: dict | None = None
        self.answered = 0
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        import errno
        import select
        import socket

        from sysbox.linux import seccomp

        conn, _ = self.sock.accept()
        with conn:
            msg, fds, _, _ = socket.recv_fds(conn, 65536, 4)
        self.message = json.loads(msg)
        fd = fds[0]
        try:
            while select.select([fd], [], [], 10)[0]:
                try:
                    n = seccomp.recv(fd)
                except OSError:
                    return  # the container is gone
                seccomp.respond(fd, n.id, error=-errno.EACCES)
                self.answered += 1
        finally:
            os.close(fd)

    def close(self) -> None:
        self.sock.close()
        self.thread.join(timeout=15)


def test_a_seccomp_agent_of_the_callers_own(make_bundle, rt, runc_root, cid, tmp_path):
    """With sysbox-fs (our trap holds the one listener a process may have) a listenerPath is
    refused in one line, leaving nothing; with --no-sysbox-fs it reaches the caller's agent as
    with runc: same message (but the bundle: runc's copy), same answers inside."""
    seen = []
    for name, prefix in (("runc", ["runc", "--root", runc_root]),
                         ("sysbox", rt.argv("--no-sysbox-fs")), ("refused", rt.argv())):
        bundle = make_bundle(["sh", "-c", "mkdir /tmp/d; echo rc=$?"], name=f"{name}-agent")
        path = os.path.join(bundle, "config.json")
        spec = json.load(open(path))
        spec["mounts"].append({"destination": "/tmp", "type": "tmpfs", "source": "tmpfs"})
        listener = str(tmp_path / f"{name}.sock")
        spec["linux"]["seccomp"] = {"defaultAction": "SCMP_ACT_ALLOW", "listenerPath": listener,
                                    "listenerMetadata": "meta-1", "architectures": ["SCMP_ARCH_X86_64"],
                                    "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_NOTIFY"}]}
        json.dump(spec, open(path, "w"))
        agent = _Agent(listener) if name != "refused" else None
        try:
            out = run(prefix + ["run", "--bundle", bundle, cid + name])
        finally:
            if agent:
                agent.close()
        if name == "refused":
            assert out.returncode == 1 and out.stderr == (
                "sysbox-runc: linux.seccomp.listenerPath: a seccomp agent of your own cannot be used with "
                "sysbox-fs, which holds the container's one listener (use --no-sysbox-fs)\n")
            assert os.listdir(runc_root) == [] and cid + name not in rt.registered()
            assert not [m for m in mounts() if cid in m]
            continue
        msg = agent.message
        assert msg is not None and agent.answered >= 1
        msg["state"].pop("id"), msg["state"].pop("bundle")
        msg["state"]["pid"] = msg.pop("pid") > 0 and msg["state"]["pid"] > 0
        seen.append((out.returncode, out.stdout.splitlines()[-1], msg))
    assert seen[0] == seen[1], seen
    assert seen[0][1] == "rc=1" and seen[0][2]["metadata"] == "meta-1"


def test_no_pivot_beside_running_containers(make_bundle, rt, cid):
    """runc --no-pivot covers every full proc/sysfs mount of the host and stops at the first it
    cannot reach: sysbox-fs's view of another container's sysfs must not be one of them."""
    assert rt("run", "-d", "--bundle", make_bundle(["sleep", "300"], name="a"), cid + "a").returncode == 0
    with open("/proc/self/mountinfo") as f:
        full = [ln.split()[4] for ln in f if ln.split()[3] == "/" and " - sysfs " in ln
                and ln.split()[4] != "/sys"]
    assert not [p for p in full if rt.fs.base in p], full
    out = rt("run", "--no-pivot", "--bundle", make_bundle(["echo", "no-pivot"], name="b"), cid + "b")
    assert (out.returncode, out.stdout.strip()) == (0, "no-pivot"), out.stderr
    assert rt("delete", "-f", cid + "a").returncode == 0
