"""sysbox-mgr, the real daemon: allocation, crash safety, reconciliation, special dirs, bad input."""

from __future__ import annotations

import json
import os
import random
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from integration.conftest import SYSBOX, run
from integration.daemons import POOL_START, Mgr
from sysbox.ipc import IPCError

HERE = os.path.dirname(__file__)


@pytest.fixture
def mgr_factory(tmp_path):
    started: list[Mgr] = []

    def make(name: str = "mgr", **kw) -> Mgr:
        m = Mgr(str(tmp_path / name), **kw)
        started.append(m)
        return m

    yield make
    for m in started:
        m.stop()


@pytest.fixture
def mgr(mgr_factory) -> Mgr:
    return mgr_factory().start()


def disjoint(ranges: list[tuple[int, int, int]]) -> bool:
    for key in (0, 1):
        spans = sorted((r[key], r[key] + r[2]) for r in ranges)
        if any(a[1] > b[0] for a, b in zip(spans, spans[1:])):
            return False
    return True


def test_200_concurrent_allocations_are_disjoint_and_reused(mgr, tmp_path):
    rootfs = str(tmp_path)

    def register(i: int) -> tuple[int, int, int]:
        with mgr.client() as c:
            r = c.call("register", id=f"c{i}", rootfs=rootfs)
        return r["uid"], r["gid"], r["size"]

    with ThreadPoolExecutor(16) as pool:
        ranges = list(pool.map(register, range(200)))
    assert len(set(ranges)) == 200 and disjoint(ranges)
    assert all(r[2] == 65536 and r[0] >= POOL_START for r in ranges)

    freed = {ranges[i] for i in range(0, 200, 4)}
    for i in range(0, 200, 4):
        assert mgr.call("unregister", id=f"c{i}") == {"released": True}
    again = [register(1000 + i) for i in range(len(freed))]
    assert set(again) == freed  # released ranges are handed out again, and only those
    status = mgr.call("status")
    assert status["pool"]["used"] == 200 and len(status["containers"]) == 200


def test_exhaustion_names_the_subuid_file(mgr_factory, tmp_path):
    m = mgr_factory(slots=3).start()
    for i in range(3):
        m.call("register", id=f"x{i}", rootfs=str(tmp_path))
    with pytest.raises(IPCError) as e:
        m.call("register", id="x3", rootfs=str(tmp_path))
    assert e.value.code == "exhausted"
    assert m.subuid in str(e.value) and "extend" in str(e.value)
    m.call("unregister", id="x1")
    assert m.call("register", id="x3", rootfs=str(tmp_path))["uid"] == POOL_START + 65536


def test_caller_chosen_mappings(mgr, tmp_path):
    r = mgr.call("register", id="a", rootfs=str(tmp_path))
    own = POOL_START + 100 * 65536 + 12345  # inside the pool, not on a slot boundary
    custom = {"uid": own, "gid": own, "size": 65536}
    assert mgr.call("register", id="own", rootfs=str(tmp_path), mappings=custom)["uid"] == own
    with pytest.raises(IPCError) as e:
        mgr.call("register", id="clash", rootfs=str(tmp_path),
                 mappings={"uid": r["uid"] + 10, "gid": POOL_START + 300 * 65536, "size": 65536})
    assert e.value.code == "conflict" and "overlaps" in str(e.value)
    with pytest.raises(IPCError):
        mgr.call("register", id="clash2", rootfs=str(tmp_path),
                 mappings={"uid": POOL_START + 400 * 65536, "gid": own + 10, "size": 65536})
    assert "a" in {c["id"] for c in mgr.call("status")["containers"]}


@pytest.mark.parametrize("uid,gid,size", [(1, POOL_START, 65536), (1000, POOL_START, 16 << 20),
                                          (POOL_START - 10, POOL_START, 65536), (POOL_START, 1000, 65536),
                                          (POOL_START + 4095 * 65536 + 1, POOL_START, 65536)])
def test_caller_mappings_outside_the_pool_are_refused(mgr, tmp_path, uid, gid, size):
    """Host users' ids (1, 1000, 65534, ...) can never be mapped into a container."""
    with pytest.raises(IPCError) as e:
        mgr.call("register", id="thief", rootfs=str(tmp_path), mappings={"uid": uid, "gid": gid, "size": size})
    assert e.value.code == "outside-pool" and "outside the sysbox entry" in str(e.value)
    assert mgr.call("status")["containers"] == []


@pytest.mark.slow
def test_sigkill_during_bursts_never_double_allocates_or_leaks(mgr_factory, tmp_path):
    """20 rounds: 4 client processes register/delete in a burst, the manager is SIGKILLed at a
    random moment, restarted; the table must match what clients were told, with no overlap."""
    m = mgr_factory(gc_interval=3600)
    runtime_root = str(tmp_path / "runtime")
    os.makedirs(runtime_root)
    rng = random.Random(1234)
    out_files = []
    for rnd in range(20):
        m.start()
        clients = []
        for k in range(4):
            out = str(tmp_path / f"out-{rnd}-{k}")
            out_files.append(out)
            clients.append(subprocess.Popen(
                [sys.executable, os.path.join(HERE, "helpers", "burst_client.py"), m.socket, runtime_root,
                 out, f"r{rnd}k{k}", "60", str(rng.randrange(1 << 30))],
                env=dict(os.environ, PYTHONPATH=os.path.dirname(HERE))))
        time.sleep(rng.uniform(0.05, 0.6))
        m.kill()
        for p in clients:
            assert p.wait(30) == 0
        m.start()  # reconciles: releases what no client got to use
        status = m.call("status")
        records = {c["id"]: c for c in status["containers"]}
        ranges = [(c["uid"], c["gid"], c["size"]) for c in records.values()]
        assert disjoint(ranges), f"round {rnd}: overlapping ranges"
        on_disk = set(os.listdir(runtime_root))
        assert set(records) == on_disk, f"round {rnd}: leaked {set(records) - on_disk}, lost {on_disk - set(records)}"
        told = {}
        for path in out_files:
            for line in open(path):
                parts = line.split()
                if parts[0] == "got":
                    told[parts[1]] = (int(parts[2]), int(parts[3]))
        for cid in on_disk:
            assert (records[cid]["uid"], records[cid]["gid"]) == told[cid]
        m.stop()
    m.start()
    fresh = [m.call("register", id=f"after-{i}", rootfs=str(tmp_path)) for i in range(20)]
    all_ranges = [(c["uid"], c["gid"], c["size"]) for c in m.call("status")["containers"]]
    assert disjoint(all_ranges) and len(fresh) == 20
    assert "reconciled at start-up" in m.read_log() and "released" in m.read_log()


def test_reconcile_releases_only_vanished_containers(mgr_factory, tmp_path):
    m = mgr_factory().start()
    runtime_root = tmp_path / "rt"
    (runtime_root / "has-state").mkdir(parents=True)
    (runtime_root / "has-state" / "state.json").write_text("{}")
    rootfs = str(tmp_path)
    sleeper = subprocess.Popen(["sleep", "300"])
    try:
        m.call("register", id="has-state", rootfs=rootfs, runtime_root=str(runtime_root))
        m.call("register", id="has-pid", rootfs=rootfs, special_dirs=["docker"])
        m.call("update", id="has-pid", pid=sleeper.pid, state="running")
        m.call("register", id="kept-stopped", rootfs=rootfs, special_dirs=["kubelet"])
        m.call("unregister", id="kept-stopped", keep=True)
        # registered by a process that then died without creating anything:
        code = ("from sysbox.mgr.client import Client; import sys;"
                f"Client({m.socket!r}).call('register', id='orphan', rootfs={rootfs!r}, special_dirs=['docker'])")
        subprocess.run([sys.executable, "-c", code], check=True)
        dead = subprocess.Popen(["true"])
        dead.wait()
        m.call("register", id="dead-pid", rootfs=rootfs)
        m.call("update", id="dead-pid", pid=dead.pid, state="running")
        m.stop()
        m.start()
        ids = {c["id"] for c in m.call("status")["containers"]}
        assert ids == {"has-state", "has-pid", "kept-stopped"}
        assert not os.path.exists(os.path.join(m.data_root, "docker", "orphan"))
        assert os.path.isdir(os.path.join(m.data_root, "docker", "has-pid"))
        log = m.read_log()
        assert "released orphan" in log and "released dead-pid" in log
    finally:
        sleeper.kill()
        sleeper.wait()


def test_periodic_gc_releases_while_running(mgr_factory, tmp_path):
    m = mgr_factory(gc_interval=0.2).start()
    p = subprocess.Popen(["sleep", "300"])
    m.call("register", id="short", rootfs=str(tmp_path))
    m.call("update", id="short", pid=p.pid, state="running")
    time.sleep(0.5)
    assert [c["id"] for c in m.call("status")["containers"]] == ["short"]
    p.kill()
    p.wait()
    deadline = time.monotonic() + 10
    while m.call("status")["containers"] and time.monotonic() < deadline:
        time.sleep(0.1)
    assert m.call("status")["containers"] == []


# -- special dirs ----------------------------------------------------------------------------

def test_special_dirs_owner_mode_copy_in_restart_and_removal(mgr, tmp_path):
    rootfs = tmp_path / "rootfs"
    img = rootfs / "var/lib/docker/image"
    img.mkdir(parents=True)
    (img / "repositories.json").write_text('{"x": 1}')
    os.chown(img / "repositories.json", 1000, 1001)
    os.symlink("repositories.json", img / "link")
    os.chmod(img, 0o711)
    r = mgr.call("register", id="sc", rootfs=str(rootfs), special_dirs=["docker", "kubelet"])
    base = r["uid"]
    dirs = {d["kind"]: d for d in r["special_dirs"]}
    assert dirs["docker"]["destination"] == "/var/lib/docker"
    docker, kubelet = dirs["docker"]["source"], dirs["kubelet"]["source"]
    assert docker == os.path.join(mgr.data_root, "docker", "sc")
    for path, mode in ((docker, 0o700), (kubelet, 0o755)):
        st = os.lstat(path)
        assert (st.st_uid, st.st_gid, st.st_mode & 0o7777) == (base, r["gid"], mode)
    copied = os.path.join(docker, "image", "repositories.json")
    st = os.lstat(copied)
    assert (st.st_uid, st.st_gid) == (base + 1000, r["gid"] + 1001)
    assert open(copied).read() == '{"x": 1}'
    assert os.lstat(os.path.join(docker, "image")).st_mode & 0o777 == 0o711
    assert os.readlink(os.path.join(docker, "image", "link")) == "repositories.json"
    assert os.lstat(os.path.join(docker, "image", "link")).st_uid == base

    # the container writes, stops (keep), starts again: same range, same content, no re-copy
    with open(os.path.join(docker, "written-inside"), "w") as f:
        f.write("data")
    (img / "repositories.json").write_text("changed in image")
    assert mgr.call("unregister", id="sc", keep=True) == {"released": False}
    again = mgr.call("register", id="sc", rootfs=str(rootfs), special_dirs=["docker", "kubelet"])
    assert again["restarted"] is True and again["uid"] == base
    assert open(os.path.join(docker, "written-inside")).read() == "data"
    assert open(copied).read() == '{"x": 1}'

    assert mgr.call("unregister", id="sc") == {"released": True}
    assert not os.path.exists(docker) and not os.path.exists(kubelet)
    assert mgr.call("status")["containers"] == []


def test_symlinks_are_never_followed(mgr, tmp_path):
    canary = tmp_path / "host-canary"
    canary.mkdir()
    (canary / "precious").write_text("host data")
    secret = tmp_path / "host-secret"
    secret.mkdir()
    (secret / "shadow").write_text("host secret")

    # the image's /var/lib/docker is a symlink to a host path: nothing is copied from it
    rootfs = tmp_path / "rootfs"
    (rootfs / "var/lib").mkdir(parents=True)
    os.symlink(str(secret), rootfs / "var/lib/docker")
    # the image's /var/lib/kubelet holds a symlink to a host file: copied as a symlink only
    (rootfs / "var/lib/kubelet").mkdir()
    os.symlink(str(secret / "shadow"), rootfs / "var/lib/kubelet/pki")
    r = mgr.call("register", id="evil", rootfs=str(rootfs), special_dirs=["docker", "kubelet"])
    dirs = {d["kind"]: d["source"] for d in r["special_dirs"]}
    assert os.listdir(dirs["docker"]) == []
    assert os.path.islink(os.path.join(dirs["kubelet"], "pki"))

    # the container plants symlinks to host paths inside its special dir; removal must not follow
    os.symlink(str(canary), os.path.join(dirs["docker"], "escape"))
    os.mkdir(os.path.join(dirs["docker"], "sub"))
    os.symlink(str(canary / "precious"), os.path.join(dirs["docker"], "sub", "file"))
    mgr.call("unregister", id="evil")
    assert (canary / "precious").read_text() == "host data"
    assert (secret / "shadow").read_text() == "host secret"
    assert not os.path.exists(dirs["docker"])


# -- protocol robustness ---------------------------------------------------------------------

MALFORMED = [
    (b"not json", "invalid JSON"),
    (b"[1, 2]", "a request is a JSON object, got list"),
    (b'"ping"', "a request is a JSON object, got str"),
    (b"42", "a request is a JSON object, got int"),
    (b"{}", "op: required field is missing"),
    (b'{"op": 7}', "unknown op '7'"),
    (b'{"op": "format_disk"}', "unknown op 'format_disk'"),
    (b'{"op": "register"}', "register: id: required field is missing"),
    (b'{"op": "register", "id": "a"}', "register: rootfs: required field is missing"),
    (b'{"op": "register", "id": "a/b", "rootfs": "/"}', "register: id:"),
    (b'{"op": "register", "id": "..", "rootfs": "/"}', "register: id:"),
    (b'{"op": "register", "id": "' + b"x" * 200 + b'", "rootfs": "/"}', "register: id:"),
    (b'{"op": "register", "id": "a", "rootfs": "rel/path"}', "register: rootfs:"),
    (b'{"op": "register", "id": "a", "rootfs": 5}', "register: rootfs: expected string"),
    (b'{"op": "register", "id": "a", "rootfs": "/", "special_dirs": ["etc"]}', "register: special_dirs[0]:"),
    (b'{"op": "register", "id": "a", "rootfs": "/", "special_dirs": "docker"}', "register: special_dirs: expected array"),
    (b'{"op": "register", "id": "a", "rootfs": "/", "special_dirs": ["docker", "docker"]}', "items must be unique"),
    (b'{"op": "register", "id": "a", "rootfs": "/", "mappings": {"uid": 1, "gid": 1, "size": 10}}', "mappings.size"),
    (b'{"op": "register", "id": "a", "rootfs": "/", "mappings": {"uid": 0, "gid": 1, "size": 65536}}', "mappings.uid"),
    (b'{"op": "update", "id": "a", "pid": -1}', "update: pid: -1 is below the minimum 1"),
    (b'{"op": "update", "id": "a", "state": "exploded"}', "update: state:"),
    (b'{"op": "unregister", "id": "a", "keep": "yes"}', "unregister: keep: expected boolean"),
    (b'{"op": "ping", "extra": 1}', 'ping: (top level): unexpected field "extra"'),
    (b'{"op": "update", "id": "never-registered"}', "container never-registered is not registered"),
    (b"[" * 100000 + b"]" * 100000, "invalid JSON"),
    (b'{"op": "register", "id": "a", "rootfs": "/\xff"}', "invalid JSON"),
]


@pytest.mark.parametrize("line, expect", MALFORMED, ids=range(len(MALFORMED)))
def test_malformed_requests_get_errors(mgr, line, expect):
    with socket.socket(socket.AF_UNIX) as s:
        s.settimeout(10)
        s.connect(mgr.socket)
        s.sendall(line + b"\n" + b'{"op": "ping"}\n')
        buf = b""
        while buf.count(b"\n") < 2:
            chunk = s.recv(65536)
            assert chunk, "daemon closed the connection"
            buf += chunk
    first, second = (json.loads(x) for x in buf.split(b"\n")[:2])
    assert first["ok"] is False and first["code"] in ("bad-request", "not-found")
    assert expect in first["error"]
    assert second["ok"] is True  # the same connection keeps working
    assert mgr.proc.poll() is None


def test_huge_message_is_refused_and_daemon_keeps_serving(mgr):
    with socket.socket(socket.AF_UNIX) as s:
        s.settimeout(10)
        s.connect(mgr.socket)
        try:
            s.sendall(b'{"op": "ping", "pad": "' + b"x" * (3 << 20))
        except (BrokenPipeError, ConnectionResetError):
            pass
        reply = json.loads(s.recv(65536).split(b"\n")[0])
    assert reply["code"] == "too-large"
    assert mgr.call("ping")["pid"] == mgr.proc.pid


def test_sigterm_cleans_up_and_second_instance_refuses(mgr_factory, tmp_path):
    m = mgr_factory().start()
    assert os.stat(m.socket).st_mode & 0o777 == 0o600
    assert open(m.pid_file).read().strip() == str(m.proc.pid)
    second = run(Mgr(m.base).argv(), timeout=15)
    assert second.returncode != 0
    assert f"another sysbox-mgr (pid {m.proc.pid}) holds {m.pid_file}" in second.stderr
    assert m.stop() == 0
    assert not os.path.exists(m.socket) and not os.path.exists(m.pid_file)
    assert "received SIGTERM, shutting down" in m.read_log()


def test_status_command(mgr, tmp_path):
    mgr.call("register", id="shown", rootfs=str(tmp_path), special_dirs=["docker"])
    out = run([SYSBOX, "mgr", "status", "--socket", mgr.socket])
    assert out.returncode == 0
    assert "shown" in out.stdout and "/var/lib/docker=" in out.stdout and "1/4096 ranges" in out.stdout
    js = json.loads(run([SYSBOX, "mgr", "status", "--json", "--socket", mgr.socket]).stdout)
    assert js["containers"][0]["id"] == "shown"
    down = run([SYSBOX, "mgr", "status", "--socket", str(tmp_path / "nope.sock")])
    assert down.returncode == 1
    assert down.stderr.startswith("sysbox: cannot reach sysbox-mgr at ")


def test_help_documents_every_flag():
    out = run([os.path.join(os.path.dirname(sys.executable), "sysbox-mgr"), "--help"])
    for flag in ("--socket", "--data-root", "--db", "--pid-file", "--subuid-file", "--subgid-file",
                 "--subid-user", "--gc-interval", "--log", "--log-level"):
        assert flag in out.stdout


def test_keep_from_register_covers_the_gap_before_unregister(mgr_factory, tmp_path):
    """Docker's stop: runc deletes its state, and only then does sysbox-runc say `keep`.  A GC
    pass in between must not take the special dirs (found as a flaky inner-Docker test)."""
    m = mgr_factory(gc_interval=0.5).start()
    layer = tmp_path / "layer"
    (layer / "merged").mkdir(parents=True)
    dead = subprocess.Popen(["true"])
    dead.wait()
    m.call("register", id="docker-ctr", rootfs=str(layer / "merged"), special_dirs=["docker"], keep=True)
    m.call("update", id="docker-ctr", pid=dead.pid, state="running")  # init gone, no runtime state
    m.call("register", id="plain-ctr", rootfs=str(layer / "merged"), special_dirs=["docker"])
    m.call("update", id="plain-ctr", pid=dead.pid, state="running")
    deadline = time.monotonic() + 10
    while "plain-ctr" in {c["id"] for c in m.call("status")["containers"]} and time.monotonic() < deadline:
        time.sleep(0.1)
    ids = {c["id"] for c in m.call("status")["containers"]}
    assert "plain-ctr" not in ids  # the GC ran
    assert "docker-ctr" in ids and os.path.isdir(os.path.join(m.data_root, "docker", "docker-ctr"))
    (layer / "merged").rmdir()
    layer.rmdir()  # docker rm: the layer dir goes, and so does the container
    deadline = time.monotonic() + 10
    while "docker-ctr" in {c["id"] for c in m.call("status")["containers"]} and time.monotonic() < deadline:
        time.sleep(0.1)
    assert "docker-ctr" not in {c["id"] for c in m.call("status")["containers"]}
