"""Faults: daemons and sysbox-runc killed mid-burst, and a frozen sysbox-fs.

Each test runs its own sysbox-mgr and sysbox-fs (the session ones are never killed), and
compares before/after snapshots: mounts, cgroup dirs, state dirs, the manager's table.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import threading
import time
import uuid

import pytest

from integration.cleanup import remove_tree
from integration.conftest import SYSBOX_RUNC, cgroup_exists, mounts, run
from integration.daemons import Fs, Mgr


class Stack:
    def __init__(self, base: str, state: str, watchdog: float = 10.0) -> None:
        self.mgr = Mgr(os.path.join(base, "mgr"), slots=512, gc_interval=1, pool_start=1 << 30)
        self.fs = Fs(os.path.join(base, "fs"), watchdog_timeout=watchdog)
        self.state, self.root = state, os.path.join(base, "runc")

    def argv(self, *args: str) -> list[str]:
        return [SYSBOX_RUNC, "--mgr-socket", self.mgr.socket, "--fs-socket", self.fs.socket, "--sysbox-state",
                self.state, "--root", self.root, *args]

    def __call__(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess:
        return run(self.argv(*args), timeout=timeout)

    def state_pid(self, cid: str) -> int:
        import json

        out = self("state", cid)
        assert out.returncode == 0, out.stderr
        return int(json.loads(out.stdout)["pid"])

    def ids(self) -> list[str]:
        return run(["runc", "--root", self.root, "list", "-q"]).stdout.split()


@pytest.fixture
def stack(tmp_path, make_bundle):
    state = f"/run/sysbox-faults-{os.getpid()}-{uuid.uuid4().hex[:6]}"
    os.makedirs(state, mode=0o711)
    s = Stack(str(tmp_path), state)
    yield s
    for cid in s.ids():
        s("delete", "--force", cid)
    for d in (s.fs, s.mgr):
        if d.proc and d.proc.poll() is None:
            d.signal(signal.SIGCONT)
            d.stop()
    left = [m for m in mounts() if m.startswith(state) or m.startswith(str(tmp_path))]
    for m in sorted(left, reverse=True):
        subprocess.run(["umount", "-l", m], capture_output=True)
    remove_tree(state)
    assert not left, f"mounts left: {left}"


def test_frozen_sysbox_fs_fails_reads_fast_and_containers_still_stop(stack, make_bundle, cid):
    stack.fs = Fs(stack.fs.base, watchdog_timeout=2)
    stack.mgr.start()
    stack.fs.start()
    assert stack("run", "-d", "--bundle", make_bundle(["sleep", "600"]), cid).returncode == 0
    assert run(["runc", "--root", stack.root, "exec", cid, "cat", "/proc/uptime"]).returncode == 0
    stack.fs.signal(signal.SIGSTOP)
    t0 = time.monotonic()
    out = run(["runc", "--root", stack.root, "exec", cid, "cat", "/proc/uptime"], timeout=60)
    took = time.monotonic() - t0
    assert out.returncode != 0
    assert "not connected" in out.stderr or "connection abort" in out.stderr, out.stderr
    assert took < 15, took  # the watchdog's 2 s, not forever
    t0 = time.monotonic()
    assert stack("kill", cid, "KILL").returncode == 0
    deadline = time.monotonic() + 20
    while stack("state", cid).returncode == 0 and '"stopped"' not in stack("state", cid).stdout \
            and time.monotonic() < deadline:
        time.sleep(0.1)
    deleted = stack("delete", cid, timeout=60)
    assert deleted.returncode == 0, deleted.stderr
    assert time.monotonic() - t0 < 20
    assert cid not in [c["id"] for c in stack.mgr.call("status")["containers"]]
    assert "aborting its FUSE connection" in stack.fs.read_log()


@pytest.mark.slow
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_kills_during_a_burst_of_lifecycles(stack, make_bundle, seed):
    """30 lifecycles from 3 threads while the manager and random sysbox-runc processes are
    SIGKILLed; the manager is restarted each time.  Afterwards every container can be deleted,
    the ones that started still run, no range was handed out twice, nothing leaked."""
    rng = random.Random(seed)
    stack.mgr.start()
    stack.fs.start()
    bundle = make_bundle(["sleep", "600"], name=f"burst{seed}")
    procs: dict[int, subprocess.Popen] = {}
    lock = threading.Lock()
    ids = [f"b{seed}-{i:02d}-{uuid.uuid4().hex[:4]}" for i in range(30)]
    stop = threading.Event()
    kills = {"mgr": 0, "fs": 0, "runc": 0}

    def lifecycle(batch: list[str]) -> None:
        for cid in batch:
            for argv in (stack.argv("run", "-d", "--bundle", bundle, cid),) + \
                    ((stack.argv("delete", "--force", cid),) if rng.random() < 0.5 else ()):
                p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)
                with lock:
                    procs[p.pid] = p
                rc = p.wait(180)
                with lock:
                    procs.pop(p.pid, None)
                if rc != 0:
                    break  # killed or refused: the next container

    def killer() -> None:
        turn = 0
        while not stop.is_set():
            time.sleep(rng.uniform(0.05, 0.25))
            turn += 1
            if turn % 4 == 0:  # every fourth shot at the manager, every fourth at sysbox-fs, the rest at runc
                stack.mgr.kill()
                kills["mgr"] += 1
                stack.mgr.start()
            elif turn % 4 == 2:
                stack.fs.kill()
                kills["fs"] += 1
                stack.fs.start()  # finds its records, re-attaches the running containers
            else:
                with lock:
                    victims = list(procs.values())
                if victims:
                    rng.choice(victims).kill()  # a sysbox-runc we started, by its pid
                    kills["runc"] += 1

    threads = [threading.Thread(target=lifecycle, args=(ids[i::3],)) for i in range(3)]
    k = threading.Thread(target=killer)
    for t in threads + [k]:
        t.start()
    for t in threads:
        t.join(600)
    stop.set()
    k.join(30)
    if stack.mgr.proc.poll() is not None:
        stack.mgr.start()
    if stack.fs.proc.poll() is not None:
        stack.fs.start()
    print(f"seed {seed}: {kills['mgr']} sysbox-mgr, {kills['fs']} sysbox-fs and {kills['runc']} sysbox-runc kills, "
          f"{len(stack.ids())} containers known to runc")
    assert kills["mgr"] > 0 and kills["fs"] > 0 and kills["runc"] > 0  # the burst really was under fire

    # no id range is held twice
    table = stack.mgr.call("status")["containers"]
    spans = sorted((c["uid"], c["uid"] + c["size"]) for c in table)
    assert all(a[1] <= b[0] for a, b in zip(spans, spans[1:])), spans
    # the containers runc knows as running still run, and the restarted sysbox-fs serves them
    for cid in stack.ids():
        st = stack("state", cid)
        if st.returncode == 0 and '"running"' in st.stdout:
            assert run(["runc", "--root", stack.root, "exec", cid, "true"]).returncode == 0
            fs_ids = [c["id"] for c in stack.fs.call("status")["containers"]]
            if cid in fs_ids:  # registered before a kill, or after the last restart
                up = run(["runc", "--root", stack.root, "exec", cid, "cat", "/proc/uptime"])
                assert up.returncode == 0 and float(up.stdout.split()[0]) < 600, up.stderr
    # every container can be deleted, including half-created ones
    for cid in ids:
        out = stack("delete", "--force", cid)
        assert out.returncode == 0 or "does not exist" in out.stderr, (cid, out.stderr)
    deadline = time.monotonic() + 20
    while [c for c in stack.mgr.call("status")["containers"] if c["id"] in ids] and time.monotonic() < deadline:
        time.sleep(0.3)
    assert not [c["id"] for c in stack.mgr.call("status")["containers"] if c["id"] in ids]
    assert not [m for m in mounts() if any(cid in m for cid in ids)]
    assert not [cid for cid in ids if cgroup_exists(cid)]
    assert not [c for c in stack.fs.call("status")["containers"] if c["id"] in ids]
    key_dirs = [os.path.join(stack.state, d) for d in os.listdir(stack.state)]
    assert not [e for d in key_dirs for e in os.listdir(d)], "state dirs left"
    # special dirs under the manager's data root, and sysbox-fs's recovery records
    data = stack.mgr.data_root
    left = [os.path.join(k, e) for k in (os.listdir(data) if os.path.isdir(data) else [])
            if os.path.isdir(os.path.join(data, k)) for e in os.listdir(os.path.join(data, k)) if e in ids]
    assert not left, left
    records = os.path.join(stack.fs.base, "state", "containers")
    assert not [r for r in (os.listdir(records) if os.path.isdir(records) else []) if r[:-5] in ids]


def test_sysbox_fs_killed_and_restarted_is_not_seen_inside(stack, make_bundle, cid):
    """A process that keeps reading inside never sees an error: while sysbox-fs is dead its
    reads wait (the holder keeps the connection), and an exec started meanwhile runs."""
    stack.mgr.start()
    stack.fs.start()
    reader = ("i=0; while true; do i=$((i+1)); "
              "if cat /proc/uptime /proc/meminfo /proc/sys/kernel/panic /sys/devices/system/cpu/online > /dev/null "
              "2>/tmp/err; then echo \"$i ok\"; else echo \"$i fail $(cat /tmp/err | head -1)\"; fi >> /tmp/reads; "
              "sleep 0.1; done")
    assert stack("run", "-d", "--bundle", make_bundle(["sh", "-c", reader]), cid).returncode == 0
    assert run(["runc", "--root", stack.root, "exec", cid, "sh", "-c", "echo 13 > /proc/sys/kernel/panic"]).returncode == 0
    # its own /sys/devices/virtual gets mounted (at this first read) by the sysbox-fs about to be killed
    assert "lo" in run(["runc", "--root", stack.root, "exec", cid, "ls", "/sys/devices/virtual/net"]).stdout.split()
    assert [m for m in mounts() if cid in m]

    def reads() -> list[str]:
        out = run(["runc", "--root", stack.root, "exec", cid, "cat", "/tmp/reads"], timeout=30)
        assert out.returncode == 0, out.stderr
        return out.stdout.splitlines()

    time.sleep(1)
    before = reads()
    assert before and all(" ok" in line for line in before), [line for line in before if " ok" not in line]
    stack.fs.kill()
    # an exec while sysbox-fs is down: runc hands its listener to the holder; its read waits
    late = subprocess.Popen(["runc", "--root", stack.root, "exec", cid, "cat", "/proc/sys/kernel/panic"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    time.sleep(1.5)
    stack.fs.start()  # same state dir and holder: it resumes the connection
    out, err = late.communicate(timeout=30)
    assert late.returncode == 0 and out == "13\n", err  # and the value written before the kill
    time.sleep(1.0)
    log = reads()
    failed = [line for line in log if " fail" in line]
    assert not failed, failed[:3]
    assert len(log) > len(before)
    assert cid in [c["id"] for c in stack.fs.call("status")["containers"]]
    assert "its connection resumed" in stack.fs.read_log()
    # a trapped mount in the container still works (its listener came back from the holder)
    mounted = run(["runc", "--root", stack.root, "exec", cid, "sh", "-c",
                   "mkdir -p /tmp/p && mount -t proc proc /tmp/p && cat /tmp/p/uptime"])
    assert mounted.returncode == 0, mounted.stderr
    assert stack("delete", "--force", cid).returncode == 0
    assert cid not in [c["id"] for c in stack.fs.call("status")["containers"]]
    assert not [m for m in mounts() if cid in m]  # the view the killed sysbox-fs mounted went with it
    assert stack("run", "--bundle", make_bundle(["cat", "/proc/uptime"], name="after"), cid + "b").returncode == 0


_WORKER = """mkdir -p /tmp/m; i=0; bad=0
while true; do
  i=$((i+1)); v=$((i % 50 + 100))
  cat /proc/uptime /proc/meminfo /proc/stat /proc/sys/kernel/ngroups_max > /dev/null 2>>/tmp/err || bad=$((bad+1))
  echo $v > /proc/sys/kernel/panic 2>>/tmp/err || bad=$((bad+1))
  read p < /proc/sys/kernel/panic; [ "$p" = "$v" ] || { bad=$((bad+1)); echo "panic [$p] for $v" >> /tmp/err; }
  if mount -t tmpfs t /tmp/m 2>>/tmp/err; then umount /tmp/m 2>>/tmp/err || bad=$((bad+1)); else bad=$((bad+1)); fi
  echo "$i $bad" > /tmp/progress.new; mv /tmp/progress.new /tmp/progress
done"""


def _fs_fds(stack) -> int:
    return len(os.listdir(f"/proc/{stack.fs.proc.pid}/fd"))


def _holder_fds(stack) -> int:
    with open(stack.fs.holder_socket + ".pid") as f:
        return len(os.listdir(f"/proc/{int(f.read())}/fd"))


def _newer_build(tmp_path) -> dict[str, str]:
    """The environment of a sysbox-fs of another build: a copy of the sources with a newer
    version, first on the import path."""
    import shutil

    import sysbox

    src = os.path.dirname(sysbox.__file__)
    dst = tmp_path / "newer" / "sysbox"
    shutil.copytree(src, dst, ignore=shutil.ignore_patterns("__pycache__"))
    init = dst / "__init__.py"
    init.write_text(init.read_text().replace(f'__version__ = "{sysbox.__version__}"', '__version__ = "99.0.0"'))
    return {"PYTHONPATH": str(tmp_path / "newer")}


@pytest.mark.slow
@pytest.mark.parametrize("how", ["kill", "upgrade"])
def test_sysbox_fs_replaced_20_times_under_load_is_never_seen(stack, make_bundle, cid, how, tmp_path):
    """10 containers read emulated nodes, write and read back /proc/sys knobs and make trapped
    mounts in tight loops (in processes started before any kill, so their seccomp listeners
    are ones the holder kept), while execs start and sysbox-fs is replaced 20 times at random
    moments: SIGKILLed and restarted, or stopped and replaced by a newer build (every other
    time): no error anywhere, every loop keeps going, nothing grows."""
    rng = random.Random(18)
    newer = _newer_build(tmp_path) if how == "upgrade" else None
    stack.mgr.start()
    stack.fs.start()
    ids = [f"{cid}-{i}" for i in range(10)]
    pids = {}
    for c in ids:
        assert stack("run", "-d", "--bundle", make_bundle(["sh", "-c", _WORKER], name=c), c).returncode == 0
        pids[c] = stack.state_pid(c)

    def progress(c: str) -> tuple[int, int]:
        try:
            with open(f"/proc/{pids[c]}/root/tmp/progress") as f:
                i, bad = f.read().split()
            return int(i), int(bad)
        except (OSError, ValueError):
            return 0, 0

    last = {c: (0, time.monotonic()) for c in ids}
    stall = {c: 0.0 for c in ids}
    stop = threading.Event()

    def watch() -> None:
        while not stop.is_set():
            now = time.monotonic()
            for c in ids:
                i, _ = progress(c)
                if i != last[c][0]:
                    stall[c] = max(stall[c], now - last[c][1])
                    last[c] = (i, now)
            time.sleep(0.02)

    exec_failures: list[str] = []
    execs = [0]

    def exec_loop() -> None:
        while not stop.is_set():
            c = rng.choice(ids)
            out = run(["runc", "--root", stack.root, "exec", c, "sh", "-c",
                       "cat /proc/uptime > /dev/null && mkdir -p /tmp/e && mount -t tmpfs e /tmp/e && umount /tmp/e"],
                      timeout=60)
            execs[0] += 1
            if out.returncode != 0:
                exec_failures.append(out.stderr[-300:])

    time.sleep(2)  # the loops are running
    watcher, execer = threading.Thread(target=watch), threading.Thread(target=exec_loop)
    watcher.start()
    execer.start()
    fds_before, holder_before = _fs_fds(stack), _holder_fds(stack)
    def ours() -> int:  # this stack's mounts only: other tests run beside this one
        return len([m for m in mounts() if m.startswith((stack.fs.base, stack.state))])

    mounts_before = ours()
    try:
        for k in range(20):
            time.sleep(rng.uniform(0.05, 1.0))
            if newer is None:
                stack.fs.kill()
                time.sleep(rng.uniform(0.0, 0.5))
                stack.fs.start()
            else:  # a clean stop, then the other build takes over
                stack.fs.signal(signal.SIGTERM)
                assert stack.fs.proc is not None and stack.fs.proc.wait(30) == 0
                stack.fs.start(env=newer if k % 2 == 0 else None)
        if newer is not None:
            assert stack.fs.call("ping")["version"] != "99.0.0"  # the last one was the other build
            stack.fs.signal(signal.SIGTERM)
            stack.fs.proc.wait(30)
            stack.fs.start(env=newer)
            assert stack.fs.call("ping")["version"] == "99.0.0"
        time.sleep(3)
    finally:
        stop.set()
        watcher.join(30)
        execer.join(90)
    before = {c: last[c][0] for c in ids}
    time.sleep(1)
    for c in ids:
        i, bad = progress(c)
        err = run(["runc", "--root", stack.root, "exec", c, "cat", "/tmp/err"]).stdout
        assert bad == 0 and not err, (c, bad, err[-500:])
        assert i > before[c] > 0, (c, i, before[c])  # still looping: nobody stuck
    assert not exec_failures, exec_failures[:3]
    assert execs[0] > 5
    worst = max(stall.values())
    print(f"20 replacements ({how}) of sysbox-fs: {sum(last[c][0] for c in ids)} loop iterations, {execs[0]} execs, "
          f"0 failures; longest stall of a container's loop {worst:.2f} s")
    assert worst < 15, stall
    time.sleep(1)
    # the holder lived through it all (every sysbox-fs is a new process, whose cgroup file
    # cache fills as its containers read: its own count is no measure of a leak)
    assert _holder_fds(stack) <= holder_before + 2, (holder_before, _holder_fds(stack))
    assert _fs_fds(stack) < fds_before + 10 * 12, (fds_before, _fs_fds(stack))
    assert ours() <= mounts_before, (mounts_before, ours())


def test_a_create_while_sysbox_fs_restarts_waits_for_it(stack, make_bundle, cid):
    """`docker run` in the second sysbox-fs needs to restart: the create waits (bounded) and
    the container gets its emulated nodes, instead of failing."""
    stack.mgr.start()
    stack.fs.start()
    stack.fs.kill()  # its socket stays, with nobody behind it
    started = subprocess.Popen(stack.argv("run", "--bundle", make_bundle(["cat", "/proc/uptime"]), cid),
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    time.sleep(1.0)
    stack.fs.start()
    out, err = started.communicate(timeout=60)
    assert started.returncode == 0, err
    assert float(out.split()[0]) < 30  # the container's uptime: emulated


def test_a_killed_holder_is_replaced_and_given_everything_again(stack, make_bundle, cid):
    """sysbox-fs holds its own copies: when the holder dies, it starts a new one and gives it
    every connection and listener, so a later sysbox-fs restart is still unseen."""
    stack.mgr.start()
    stack.fs.start()
    assert stack("run", "-d", "--bundle", make_bundle(["sleep", "600"]), cid).returncode == 0
    assert run(["runc", "--root", stack.root, "exec", cid, "sh", "-c", "echo 21 > /proc/sys/kernel/panic"]).returncode == 0
    with open(stack.fs.holder_socket + ".pid") as f:
        first = int(f.read())
    os.kill(first, signal.SIGKILL)
    deadline = time.monotonic() + 20
    second = first
    while second == first and time.monotonic() < deadline:
        time.sleep(0.1)
        try:
            with open(stack.fs.holder_socket + ".pid") as f:
                second = int(f.read())
        except (OSError, ValueError):
            pass
    assert second != first and os.path.exists(f"/proc/{second}")
    time.sleep(0.5)
    stack.fs.kill()
    stack.fs.start()
    out = run(["runc", "--root", stack.root, "exec", cid, "sh", "-c",
               "cat /proc/sys/kernel/panic && mkdir -p /tmp/m && mount -t tmpfs t /tmp/m && umount /tmp/m && echo ok"])
    assert out.returncode == 0 and out.stdout.split() == ["21", "ok"], out.stdout + out.stderr
    assert "its connection resumed" in stack.fs.read_log()
