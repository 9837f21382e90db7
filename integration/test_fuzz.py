"""Property-based bad input (hypothesis): config.json through `sysbox-runc create`, requests on
the sysbox-mgr and sysbox-fs sockets, and values written into emulated /proc/sys nodes.

Every config case either creates (then deletes) or fails with a short error, never a Python
traceback, and leaves no state dir, mount, cgroup or registration.  Every socket request gets
an error reply or a closed connection, and the daemon keeps answering.  Seeds are derived from
the test names (derandomize), so a failure reproduces.
"""

from __future__ import annotations

import json
import os
import socket
import uuid

import pytest

hypothesis = pytest.importorskip("hypothesis", reason="hypothesis is a test dependency (pip install -e '.[test]')")
from hypothesis import HealthCheck, given, settings, strategies as st  # noqa: E402

from integration.conftest import cgroup_exists, mounts  # noqa: E402
from sysbox.linux import syscalls as sc  # noqa: E402

CASES_PER_TEST = 260  # four config tests: 1040 cases
SETTINGS = dict(max_examples=CASES_PER_TEST, deadline=None, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                       HealthCheck.data_too_large])

PATHS = ["ociVersion", "root", "root.path", "root.readonly", "process", "process.args", "process.args.0",
         "process.env", "process.env.0", "process.cwd", "process.user", "process.user.uid", "process.user.gid",
         "process.capabilities", "process.capabilities.bounding", "process.rlimits", "process.rlimits.0.hard",
         "process.oomScoreAdj", "process.terminal", "process.noNewPrivileges", "hostname", "mounts", "mounts.0",
         "mounts.0.destination", "mounts.0.source", "mounts.0.options", "mounts.0.type", "mounts.5.source",
         "linux", "linux.namespaces", "linux.namespaces.0", "linux.namespaces.0.path", "linux.namespaces.2.type",
         "linux.uidMappings", "linux.gidMappings", "linux.resources", "linux.resources.memory",
         "linux.resources.devices", "linux.seccomp", "linux.maskedPaths", "linux.readonlyPaths", "linux.sysctl",
         "linux.cgroupsPath", "linux.rootfsPropagation", "hooks", "annotations"]
NASTY = ["", "..", "../../..", "/..", "/proc/self/root", "/proc/1/root/etc", "/etc/shadow", "/dev/sda",
         "a" * 5000, "x\x00y", "/tmp/../../etc", "~", "*", "$(reboot)", "\u202e", "/sys/kernel/security"]

scalars = st.one_of(st.none(), st.booleans(), st.integers(min_value=-(2 ** 64), max_value=2 ** 64),
                    st.floats(allow_nan=False), st.text(max_size=40), st.sampled_from(NASTY))
values = st.recursive(scalars, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                         st.dictionaries(st.text(max_size=12), inner, max_size=4)),
                      max_leaves=12)
mutation = st.tuples(st.sampled_from(PATHS), st.one_of(st.just(KeyError), values))


def _apply(spec: dict, path: str, value) -> None:
    node = spec
    keys = path.split(".")
    for k in keys[:-1]:
        try:
            node = node[int(k)] if k.isdigit() else node[k]
        except (KeyError, IndexError, TypeError, ValueError):
            return
        if not isinstance(node, (dict, list)):
            return
    last = keys[-1]
    try:
        if isinstance(node, list):
            i = int(last)
            if value is KeyError:
                del node[i]
            else:
                node[i] = value
        elif value is KeyError:
            node.pop(last, None)
        else:
            node[last] = value
    except (IndexError, ValueError, TypeError):
        pass


def _one_case(rt, bundle: str, spec: dict, raw: bytes | None = None) -> None:
    cid = "fz-" + uuid.uuid4().hex[:10]
    with open(os.path.join(bundle, "config.json"), "wb") as f:
        f.write(raw if raw is not None else json.dumps(spec).encode())
    out = rt("create", "--bundle", bundle, cid, timeout=60)
    assert "Traceback" not in out.stderr, out.stderr
    if out.returncode == 0:
        deleted = rt("delete", "--force", cid)
        assert deleted.returncode == 0, deleted.stderr
    else:
        assert out.returncode == 1, (out.returncode, out.stderr)
        lines = [line for line in out.stderr.splitlines() if line.strip()]
        errors = [line for line in lines if line.startswith("sysbox-runc: ") or "level=error" in line]
        assert errors and len(lines) <= 3, out.stderr
    assert not [m for m in mounts() if cid in m]
    assert cgroup_exists(cid) == []
    assert cid not in rt.registered() and cid not in rt.fs_registered()
    from sysbox.runc import state

    assert not os.path.exists(state.container_dir({"root": rt.root, "sysbox-state": rt.state_dir}, cid))


@pytest.fixture
def base(make_bundle):
    bundle = make_bundle(["true"], name="fuzz")
    with open(os.path.join(bundle, "config.json")) as f:
        return bundle, json.load(f)


def _fuzz(rt, base, mutations) -> None:
    bundle, spec = base
    spec = json.loads(json.dumps(spec))
    for path, value in mutations:
        _apply(spec, path, value)
    _one_case(rt, bundle, spec)


@pytest.mark.slow
@settings(**SETTINGS)
@given(st.lists(mutation, min_size=1, max_size=3))
def test_config_mutations_a(rt, base, mutations):
    _fuzz(rt, base, mutations)


@pytest.mark.slow
@settings(**SETTINGS)
@given(st.lists(mutation, min_size=1, max_size=4))
def test_config_mutations_b(rt, base, mutations):
    _fuzz(rt, base, mutations)


@pytest.mark.slow
@settings(**SETTINGS)
@given(st.lists(st.tuples(st.sampled_from([p for p in PATHS if p.startswith(("mounts", "linux.namespaces",
                                                                              "linux.uidMappings", "root"))]),
                          st.one_of(st.just(KeyError), values)), min_size=1, max_size=3))
def test_config_mutations_mounts_namespaces_root(rt, base, mutations):
    _fuzz(rt, base, mutations)


@pytest.mark.slow
@settings(**SETTINGS)
@given(st.one_of(st.binary(max_size=300), st.text(max_size=200).map(str.encode)))
def test_config_raw_bytes(rt, base, raw):
    _one_case(rt, base[0], base[1], raw)


def _raw_request(path: str, payload: bytes) -> bytes:
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(10)
    try:
        s.connect(path)
        s.sendall(payload)
        s.shutdown(socket.SHUT_WR)
        data = b""
        while chunk := s.recv(65536):
            data += chunk
        return data
    finally:
        s.close()


requests = st.one_of(
    st.binary(max_size=400).map(lambda b: b + b"\n"),
    st.dictionaries(st.sampled_from(["op", "id", "pid", "uid", "spec", "keep", "mappings", "special_dirs",
                                     "rootfs", "runtime_root", "state", "size"]), values, max_size=6)
    .map(lambda d: json.dumps(d).encode() + b"\n"),
    st.builds(lambda op, args: json.dumps({"op": op, **args}).encode() + b"\n",
              st.sampled_from(["register", "unregister", "update", "validate", "status", "ping", "nope", ""]),
              st.dictionaries(st.text(max_size=10), values, max_size=5)),
)


@pytest.mark.slow
@settings(**{**SETTINGS, "max_examples": 400})
@given(requests)
def test_manager_protocol(session_mgr, rt, payload):
    before = {c["id"] for c in session_mgr.call("status")["containers"]}
    reply = _raw_request(session_mgr.socket, payload)
    for line in reply.splitlines():
        msg = json.loads(line)
        assert isinstance(msg, dict) and ("ok" in msg)
    session_mgr.call("ping")  # still answering
    after = {c["id"] for c in session_mgr.call("status")["containers"]}
    # a fuzzed register may succeed (it is a valid request); it must then be undoable
    for cid in after - before:
        session_mgr.call("unregister", id=cid)
    assert {c["id"] for c in session_mgr.call("status")["containers"]} == before


@pytest.mark.slow
@settings(**{**SETTINGS, "max_examples": 400})
@given(requests)
def test_fs_protocol(session_fs, payload):
    before = {c["id"] for c in session_fs.call("status")["containers"]}
    reply = _raw_request(session_fs.socket, payload)
    for line in reply.splitlines():
        assert "ok" in json.loads(line)
    after = {c["id"] for c in session_fs.call("status")["containers"]}
    for cid in after - before:
        session_fs.call("unregister", id=cid)
    assert {c["id"] for c in session_fs.call("status")["containers"]} == before


def _write_as_container_root(userns: str, mnt: str, rel: str, data: bytes) -> tuple[int, bytes]:
    """Write `data` to `path` from a child that is root of the container's user namespace (as a
    process inside would be, without an exec per case); returns (errno or 0, value read back)."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.close(r)
            # the mount lies under root-only test dirs: hold it before becoming the container's root
            dfd = os.open(mnt, os.O_PATH | os.O_DIRECTORY)
            sc.setns(os.open(userns, os.O_RDONLY), sc.CLONE_NEWUSER)
            os.setresgid(0, 0, 0)
            os.setresuid(0, 0, 0)
            err = 0
            try:
                fd = os.open(rel, os.O_WRONLY | os.O_TRUNC, dir_fd=dfd)
                try:
                    os.write(fd, data)
                finally:
                    os.close(fd)
            except OSError as e:
                err = e.errno or -1
            fd = os.open(rel, os.O_RDONLY, dir_fd=dfd)
            try:
                back = os.read(fd, 65536)
            finally:
                os.close(fd)
            os.write(w, json.dumps([err, back.decode(errors="replace")]).encode())
        except BaseException as e:  # reported to the parent, which fails the case with it
            os.write(w, json.dumps(["child", repr(e)]).encode())
        finally:
            os._exit(0)
    os.close(w)
    out = b""
    while chunk := os.read(r, 65536):
        out += chunk
    os.close(r)
    os.waitpid(pid, 0)
    err, back = json.loads(out)
    assert err != "child", back
    return err, back.encode()


KNOBS = ["kernel/panic", "vm/overcommit_memory", "kernel/pid_max", "net/netfilter/nf_conntrack_max",
         "fs/file-max", "kernel/printk"]
writes = st.one_of(st.integers(min_value=-(2 ** 70), max_value=2 ** 70).map(lambda i: str(i).encode()),
                   st.binary(max_size=64), st.text(max_size=40).map(str.encode),
                   st.sampled_from([b"", b"\n", b"1 2 3 4 5", b"0x10", b"1e3", b"-0", b"+7", b" 5 ", b"9" * 400,
                                    b"4\n5", b"\x00", b"2147483648", b"-2147483649"]))


@pytest.fixture
def sysctl_container(rt, make_bundle, cid):
    out = rt("run", "-d", "--bundle", make_bundle(["sleep", "600"], name="sysctl"), cid)
    assert out.returncode == 0, out.stderr
    return f"/proc/{rt.state(cid)['pid']}/ns/user", os.path.join(rt.fs.mountpoint, cid)


@pytest.mark.slow
@settings(**{**SETTINGS, "max_examples": 300})
@given(st.sampled_from(KNOBS), writes)
def test_proc_sys_writes(sysctl_container, knob, data):
    userns, mnt = sysctl_container
    host_before = open("/proc/sys/" + knob, "rb").read() if os.path.exists("/proc/sys/" + knob) else None
    err, back = _write_as_container_root(userns, mnt, "proc/sys/" + knob, data)
    assert err in (0, 22, 34, 13), err  # accepted, EINVAL, ERANGE, or EACCES for read-only knobs
    assert back.endswith(b"\n") and b"Traceback" not in back  # always readable afterwards
    if err == 0:  # only integers are accepted, and what was written is what is read back
        written = [int(t) for t in data.split()]
        assert [int(t) for t in back.split()][:len(written)] == written
    if host_before is not None:
        assert open("/proc/sys/" + knob, "rb").read() == host_before
