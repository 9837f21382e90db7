"""Hostile containers: every attack is made from inside a real container, against the real
daemons, and must end with the kernel's own answer, the host unchanged, the daemons alive and
no larger (fds, mounts), and an innocent neighbour container still served.

| # | attack from inside                                               | safe outcome                               |
|---|------------------------------------------------------------------|--------------------------------------------|
| 1 | nested userns (uid 1000 or root) mounts proc / umounts root's    | EPERM, as the kernel; root's mount stays   |
| 2 | trapped mount target /proc/self/../../<path>                     | resolved inside: ENOENT for host paths     |
| 3 | 2,400 trapped mounts whose target fails to open                  | ENOENT each, no fd growth, daemon alive    |
| 4 | mount on /proc/self/fd/999                                       | answered (ENOENT), never hangs             |
| 5 | 1,100-deep cgroup chain                                          | sysbox-fs alive, loadavg still served      |
| 6 | 1,100-deep chain in /var/lib/docker, then delete                 | sysbox-mgr alive, dir removed by GC        |
| 7 | read root-only host knobs (mmap_rnd_bits, cad_pid, slab objects)  | EACCES, as through a raw procfs            |
| 8 | write net/uts/ipc knobs of host-owned namespaces joined by path   | EACCES; host value unchanged               |
| 9 | ping_group_range written in the container's id space             | its own gids; out-of-range gids EINVAL     |
|11 | read the runtime's state files                                   | 0600 files, root-only sockets              |
|12 | spec mappings over host ids (1, 1000, 16M)                       | refused, one line, nothing left            |
|13 | umount/move/bind/remount of masks, read-only paths, sysbox nodes  | EINVAL/EPERM; mountinfo unchanged          |
|14 | floods of trapped umount2 and FUSE reads                         | neighbour's reads all succeed              |
|  | root.path of the host's / (shifting it would re-own host files)  | refused before anything is touched         |
"""

from __future__ import annotations

import json
import os
import subprocess
import threading
import time

import pytest

from integration.conftest import run, wait_for

ENOENT, EPERM, EINVAL, EACCES = "No such file or directory", "Operation not permitted", "Invalid argument", \
    "Permission denied"


@pytest.fixture
def hostile(rt, make_bundle, helper_dir):
    """start(cid, spec_edit=None) -> pid of a busybox container with sysc at /home/sysc."""

    def start(cid: str, edit=None, args=("sleep", "300")) -> int:
        bundle = make_bundle(list(args), name=cid)
        path = os.path.join(bundle, "config.json")
        spec = json.load(open(path))
        spec["mounts"].append({"destination": "/home", "type": "bind", "source": helper_dir,
                               "options": ["rbind", "ro"]})
        if edit:
            edit(spec)
        json.dump(spec, open(path, "w"))
        out = rt("run", "-d", "--bundle", bundle, cid)
        assert out.returncode == 0, out.stderr
        pid = rt.state(cid)["pid"]
        for w in watches:
            w.arm()
        return pid

    watches: list[Watch] = []
    start.watches = watches  # type: ignore[attr-defined]
    return start


def sh(rt, cid: str, script: str, user: str | None = None, timeout: float = 60) -> subprocess.CompletedProcess:
    extra = ["--user", user] if user else []
    return run(["runc", "--root", rt.root, "exec", *extra, cid, "sh", "-c", script], timeout=timeout)


def fd_count(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


class Watch:
    """Daemon health around an attack: alive, fds and host mounts not growing, and an innocent
    neighbour container still served (its emulated /proc and /proc/sys)."""

    def __init__(self, rt, neighbour: str) -> None:
        self.rt, self.neighbour = rt, neighbour
        self.fs_pid, self.mgr_pid = rt.fs.proc.pid, rt.mgr.proc.pid
        self.arm()

    def arm(self) -> None:
        """Take the baseline: call it once the attacker is running (its own fds count)."""
        self.fds = fd_count(self.fs_pid), fd_count(self.mgr_pid)
        with open("/proc/self/mountinfo") as f:
            self.mounts = len(f.readlines())

    def served(self) -> None:
        out = sh(self.rt, self.neighbour, "cat /proc/uptime /proc/sys/kernel/panic /proc/meminfo >/dev/null && echo ok")
        assert out.stdout.strip() == "ok", out.stderr

    def check(self, slack: int = 16) -> None:
        assert self.rt.fs.proc.poll() is None, "sysbox-fs died: " + self.rt.fs.read_log()[-2000:]
        assert self.rt.mgr.proc.poll() is None, "sysbox-mgr died: " + self.rt.mgr.read_log()[-2000:]
        self.rt.fs.call("ping")
        self.rt.mgr.call("ping")
        self.served()
        fs_fds, mgr_fds = fd_count(self.fs_pid), fd_count(self.mgr_pid)
        assert fs_fds <= self.fds[0] + slack, f"sysbox-fs fds {self.fds[0]} -> {fs_fds}"
        assert mgr_fds <= self.fds[1] + slack, f"sysbox-mgr fds {self.fds[1]} -> {mgr_fds}"
        with open("/proc/self/mountinfo") as f:
            assert len(f.readlines()) <= self.mounts + slack


@pytest.fixture
def watch(rt, hostile, cid):
    nb = cid + "-nb"
    hostile(nb)
    w = Watch(rt, nb)
    w.served()
    hostile.watches.append(w)  # re-armed when the attacker starts
    return w


# -- 1: privilege is judged against the namespace's owner ------------------------------------


def test_nested_userns_cannot_mount_or_unmount_proc(rt, hostile, watch, cid):
    hostile(cid)
    for user in ("1000:1000", None):
        out = sh(rt, cid, "unshare -Ur /home/sysc mount p /etc proc 0", user=user)
        assert out.stdout.strip() == EPERM, (user, out.stdout, out.stderr)
    assert sh(rt, cid, "grep -c ' /etc ' /proc/self/mountinfo").stdout.strip() == "0"
    # root's emulated procfs cannot be unmounted from a nested user namespace either
    assert sh(rt, cid, "mkdir -p /tmp/p && /home/sysc mount p /tmp/p proc 0").stdout.strip() == "ok"
    for user in ("1000:1000", None):
        out = sh(rt, cid, "unshare -Ur /home/sysc umount /tmp/p 2", user=user)
        assert out.stdout.strip() == EPERM, (user, out.stdout)
    assert sh(rt, cid, "cat /tmp/p/uptime >/dev/null && grep -c ' /tmp/p ' /proc/self/mountinfo").stdout.strip() == "1"
    # uid 1000 without a nested namespace: the kernel's answer, not ours
    assert sh(rt, cid, "/home/sysc mount p /tmp proc 0", user="1000:1000").stdout.strip() == EPERM
    watch.check()


# -- 2, 3, 4: targets are resolved inside; every failure is answered, nothing leaks ----------


def test_proc_self_dotdot_is_resolved_inside_the_container(rt, hostile, watch, cid, tmp_path):
    host_only = tmp_path / "host-only"
    host_only.mkdir()
    hostile(cid)
    out = sh(rt, cid, f"/home/sysc mount p /proc/self/../../{str(host_only).lstrip('/')} proc 0", timeout=20)
    assert out.stdout.strip() == ENOENT  # the host path does not exist in the container's root
    assert not os.path.ismount(host_only)
    out = sh(rt, cid, "mkdir -p /tmp/inside && /home/sysc mount p /proc/self/../../tmp/inside proc 0 && "
                      "cat /tmp/inside/sys/kernel/panic >/dev/null && echo mounted-inside", timeout=20)
    assert out.stdout.split()[-1] == "mounted-inside", out.stdout + out.stderr
    watch.check()


def test_failing_targets_are_answered_and_leak_nothing(rt, hostile, watch, cid):
    hostile(cid)
    before = fd_count(watch.fs_pid)
    out = sh(rt, cid, "/home/sysc loop 2400 mount p /proc/self/fd/999 proc 0", timeout=300)
    assert out.stdout.split() == ["2=2400"], out.stdout + out.stderr  # ENOENT each, no hang
    out = sh(rt, cid, "/home/sysc loop 300 mount p /nonexistent/dir proc 0", timeout=120)
    assert out.stdout.split() == ["2=300"], out.stdout
    assert fd_count(watch.fs_pid) <= before + 4
    watch.check()


def test_bad_pointers_and_missing_paths_get_the_kernels_errno(rt, hostile, watch, cid):
    hostile(cid)
    assert sh(rt, cid, "/home/sysc badptr").stdout.split("\n")[:2] == ["Bad address", "Bad address"]
    assert sh(rt, cid, "/home/sysc umount /no/such/mount 0").stdout.strip() == ENOENT
    assert sh(rt, cid, "/home/sysc umount /etc 8").stdout.strip() == EINVAL  # not a mount point
    assert sh(rt, cid, "/home/sysc umount /tmp 1").stdout.strip() == EPERM  # MNT_FORCE: host privilege
    watch.check()


# -- 5, 6: trees a container builds cannot stop a daemon -------------------------------------


CHAIN = "i=0; while [ $i -lt 1100 ]; do mkdir a && cd a || exit 1; i=$((i+1)); done; echo built"
UNCHAIN = "cd {top}; i=0; while [ $i -lt 1100 ]; do cd a; i=$((i+1)); done; " \
          "i=0; while [ $i -lt 1100 ]; do cd .. && rmdir a || exit 1; i=$((i+1)); done; echo removed"


@pytest.mark.slow
def test_deep_cgroup_chain_does_not_stop_sysbox_fs(rt, hostile, watch, cid):
    from sysbox.fs.nodes.proc_loadavg import INTERVAL

    hostile(cid)
    top = "/sys/fs/cgroup/pids"
    out = sh(rt, cid, f"cd {top} && {CHAIN}", timeout=120)
    assert out.stdout.strip() == "built", out.stderr
    time.sleep(INTERVAL * 1.5)  # at least one loadavg sample walks the chain
    assert sh(rt, cid, "cat /proc/loadavg").returncode == 0
    watch.check()
    assert sh(rt, cid, UNCHAIN.format(top=top), timeout=120).stdout.strip() == "removed"


@pytest.mark.slow
def test_deep_special_dir_chain_does_not_stop_sysbox_mgr(rt, hostile, watch, cid):
    hostile(cid)
    host_dir = next(d["source"] for c in rt.mgr.call("status")["containers"] if c["id"] == cid
                    for d in c["special_dirs"] if d["destination"] == "/var/lib/docker")
    out = sh(rt, cid, f"cd /var/lib/docker && {CHAIN}", timeout=120)
    assert out.stdout.strip() == "built", out.stderr
    assert rt("delete", "--force", cid).returncode == 0
    assert wait_for(lambda: cid not in rt.registered(), timeout=60), rt.mgr.read_log()[-2000:]
    assert not os.path.exists(host_dir)
    watch.check()


# -- 7, 8, 9: the FUSE side applies the kernel's permission checks ----------------------------


ROOT_ONLY = ["/proc/sys/vm/mmap_rnd_bits", "/proc/sys/kernel/cad_pid", "/proc/sys/kernel/usermodehelper/bset",
             "/proc/sys/kernel/usermodehelper/inheritable", "/proc/sys/net/ipv4/tcp_fastopen_key"]


def _slab_objects() -> list[str]:
    try:
        return [f"/sys/kernel/slab/{n}/objects" for n in sorted(os.listdir("/sys/kernel/slab"))[:2]]
    except FileNotFoundError:
        return []


def test_root_only_host_files_are_unreadable(rt, hostile, watch, cid):
    hostile(cid)
    host_only = [p for p in ROOT_ONLY[:4] + _slab_objects()
                 if os.path.exists(p) and not os.stat(p).st_mode & 0o004]
    assert host_only, "no root-only knob on this host to try"
    for user in (None, "1000:1000"):
        for path in host_only:
            out = sh(rt, cid, f"cat {path}", user=user)
            assert out.returncode != 0 and EACCES in out.stderr, (user, path, out.stdout)
        assert sh(rt, cid, "cat /proc/sys/kernel/ostype", user=user).stdout.strip() == "Linux"  # 0444: readable
    # a 0600 knob of the container's own network namespace is its root's to read, not uid 1000's
    key = "/proc/sys/net/ipv4/tcp_fastopen_key"
    if os.path.exists(key):
        assert sh(rt, cid, f"cat {key}").returncode == 0
        assert EACCES in sh(rt, cid, f"cat {key}", user="1000:1000").stderr
    watch.check()


def _join_host(kinds: tuple[str, ...]):
    def edit(spec: dict) -> None:
        if "uts" in kinds:
            spec.pop("hostname", None)  # runc's sethostname would be refused in the host's UTS namespace
        for ns in spec["linux"]["namespaces"]:
            if ns["type"] in kinds:
                ns["path"] = f"/proc/{os.getpid()}/ns/{'net' if ns['type'] == 'network' else ns['type']}"
    return edit


def test_host_owned_namespaces_are_not_the_containers(rt, make_bundle, helper_dir, watch, cid):
    """docker --network host, a pod netns made by containerd: joined, but never written for.
    (runc 1.1's exec cannot enter such a container: the attack runs as its init.)"""
    knobs = {"net/ipv4/tcp_keepalive_time": "7201", "kernel/hostname": "evil-host", "kernel/shmmni": "1234",
             "net/ipv4/ip_unprivileged_port_start": "77"}
    before = {k: open("/proc/sys/" + k).read() for k in knobs}
    script = "".join(f"echo {v} > /proc/sys/{k} 2>/dev/null && echo wrote-{k}; cat /proc/sys/{k}; "
                     for k, v in knobs.items())
    script += "hostname evil-host 2>/dev/null && echo set-hostname; " \
              "echo 77 > /proc/sys/kernel/panic && cat /proc/sys/kernel/panic"
    bundle = make_bundle(["sh", "-c", script], name=cid)
    path = os.path.join(bundle, "config.json")
    spec = json.load(open(path))
    _join_host(("network", "uts", "ipc"))(spec)
    json.dump(spec, open(path, "w"))
    out = rt("run", "--bundle", bundle, cid, timeout=60)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert not [line for line in lines if line.startswith(("wrote-", "set-hostname"))], lines
    assert lines[:len(knobs)] == [before[k].strip() for k in knobs]  # reads are fine
    assert lines[-1] == "77"  # emulated knobs stay per container, as in any container
    assert {k: open("/proc/sys/" + k).read() for k in knobs} == before
    assert open("/proc/sys/kernel/panic").read().strip() != "77"
    watch.check()


def test_own_namespaces_are_written_as_the_containers_root(rt, hostile, watch, cid):
    host = open("/proc/sys/net/ipv4/ping_group_range").read()
    hostile(cid)
    out = sh(rt, cid, "echo '0 0' > /proc/sys/net/ipv4/ping_group_range && cat /proc/sys/net/ipv4/ping_group_range")
    assert out.stdout.split() == ["0", "0"], out.stdout + out.stderr  # container gids, not 65534
    out = sh(rt, cid, "echo '1000 2000' > /proc/sys/net/ipv4/ping_group_range && "
                      "cat /proc/sys/net/ipv4/ping_group_range")
    assert out.stdout.split() == ["1000", "2000"]
    out = sh(rt, cid, "echo '0 70000' > /proc/sys/net/ipv4/ping_group_range")  # gid 70000 is not mapped
    assert out.returncode != 0 and EINVAL in out.stderr, out.stderr
    assert sh(rt, cid, "echo 7202 > /proc/sys/net/ipv4/tcp_keepalive_time && "
                       "cat /proc/sys/net/ipv4/tcp_keepalive_time").stdout.strip() == "7202"
    assert EACCES in sh(rt, cid, "echo 7203 > /proc/sys/net/ipv4/tcp_keepalive_time", user="1000:1000").stderr
    assert open("/proc/sys/net/ipv4/ping_group_range").read() == host
    assert open("/proc/sys/net/ipv4/tcp_keepalive_time").read().strip() != "7202"
    watch.check()


# -- 11, 12: state and ids ---------------------------------------------------------------------


def test_runtime_state_is_root_only(rt, hostile, cid):
    from sysbox.runc import state

    hostile(cid)
    cdir = state.container_dir({"root": rt.root, "sysbox-state": rt.state_dir}, cid)
    for name in os.listdir(cdir):
        st = os.lstat(os.path.join(cdir, name))
        if os.path.isfile(os.path.join(cdir, name)) and not name.endswith(".pid"):
            assert st.st_mode & 0o077 == 0, (name, oct(st.st_mode))
    assert os.stat(cdir).st_mode & 0o777 == 0o711  # searchable for runc's root.path, not listable
    for sock in (rt.mgr.socket, rt.fs.socket, rt.fs.seccomp_socket):
        assert os.stat(sock).st_mode & 0o077 == 0, sock
    # the rewritten spec carries the caller's environment: host user nobody cannot read it
    cfg = os.path.join(cdir, "config.json")
    out = run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "cat", cfg])
    assert out.returncode != 0 and EACCES in out.stderr


@pytest.mark.parametrize("host_id,size", [(1, 65536), (1000, 16 << 20), (65534, 65536)])
def test_spec_mappings_over_host_ids_are_refused(rt, make_bundle, cid, host_id, size):
    bundle = make_bundle(["true"])
    path = os.path.join(bundle, "config.json")
    spec = json.load(open(path))
    spec["linux"]["uidMappings"] = [{"containerID": 0, "hostID": host_id, "size": size}]
    spec["linux"]["gidMappings"] = [{"containerID": 0, "hostID": host_id, "size": size}]
    json.dump(spec, open(path, "w"))
    out = rt("create", "--bundle", bundle, cid)
    assert out.returncode == 1 and "outside the sysbox entry" in out.stderr and out.stderr.count("\n") == 1
    assert cid not in rt.registered() and os.listdir(rt.root) == []


def test_host_root_as_rootfs_is_refused(rt, tmp_path, runc_default_spec, cid):
    from sysbox.oci.bundle import write_bundle

    dev_null = os.stat("/dev/null")
    for root in ("/proc/self/root", "/", "/dev", "../../../../../../dev"):
        bundle = str(tmp_path / f"b{abs(hash(root))}")
        write_bundle(bundle, "/", ["true"], base=runc_default_spec)
        spec = json.load(open(os.path.join(bundle, "config.json")))
        spec["root"]["path"] = root
        json.dump(spec, open(os.path.join(bundle, "config.json"), "w"))
        out = rt("--shift-mode", "chown", "create", "--bundle", bundle, cid)
        assert out.returncode == 1 and "a host system tree" in out.stderr, (root, out.stderr)
    after = os.stat("/dev/null")
    assert (after.st_uid, after.st_gid, after.st_mode) == (dev_null.st_uid, dev_null.st_gid, dev_null.st_mode)
    assert cid not in rt.registered()


# -- 13: what runc and sysbox-runc set up stays in place ---------------------------------------


def _mountinfo(rt, cid: str) -> list[str]:
    return sorted(line.split(" - ")[0].split(" ", 4)[4].split(" ")[0]
                  for line in sh(rt, cid, "cat /proc/self/mountinfo").stdout.splitlines())


def test_immutable_mounts_stay(rt, hostile, watch, cid):
    hostile(cid)
    before = _mountinfo(rt, cid)
    targets = [p for p in ("/proc/kcore", "/proc/keys", "/proc/timer_list", "/proc/acpi", "/sys/firmware",
                           "/proc/uptime", "/proc/meminfo", "/proc/sys", "/sys/kernel", "/proc/bus", "/proc")
               if p in before]
    assert "/proc/uptime" in targets and "/proc/sys" in targets
    for t in targets:
        for flags in ("0", "2"):  # plain and MNT_DETACH
            out = sh(rt, cid, f"/home/sysc umount {t} {flags}")
            assert out.stdout.strip() == EINVAL, (t, flags, out.stdout)
    ms_move, ms_bind, ms_remount = 0x2000, 0x1000, 0x20
    for src in [p for p in ("/proc/keys", "/proc/timer_list", "/proc/kcore") if p in before] + ["/proc/uptime"]:
        out = sh(rt, cid, f"touch /tmp/f && /home/sysc mount {src} /tmp/f none {ms_move}")
        assert out.stdout.strip() == EINVAL, (src, out.stdout)
    out = sh(rt, cid, f"mkdir -p /tmp/b && /home/sysc mount /proc /tmp/b none {ms_bind}")
    assert out.stdout.strip() == EINVAL  # a bind without its children would show what the masks cover
    if "/proc/bus" in before:
        out = sh(rt, cid, f"/home/sysc mount none /proc/bus none {ms_remount | ms_bind}")
        assert out.stdout.strip() == EPERM  # read-only stays read-only
    assert _mountinfo(rt, cid) == before
    # ordinary mount work is untouched: a tmpfs of its own comes and goes, rbind of /proc works
    assert sh(rt, cid, "mount -t tmpfs t /mnt && umount /mnt && echo fine").stdout.strip() == "fine"
    out = sh(rt, cid, f"/home/sysc mount /proc /tmp/b none {ms_bind | 0x4000} && umount -l /tmp/b && echo fine")
    assert out.stdout.split()[-1] == "fine", out.stdout + out.stderr
    watch.check()


# -- 14: floods stay the flooder's problem ------------------------------------------------------


@pytest.mark.slow
def test_floods_do_not_starve_the_neighbour(rt, hostile, watch, cid):
    hostile(cid)
    assert sh(rt, cid, "mkdir -p /tmp/stack && /home/sysc mounts 2000 /tmp/stack").stdout.strip() == "2000"
    results: dict[str, str] = {}

    def flood(name: str, script: str) -> None:
        results[name] = sh(rt, cid, script, timeout=300).stdout

    floods = [threading.Thread(target=flood, args=("umount", "mkdir -p /tmp/not-a-mount && "
                                                             "/home/sysc loop 3000 umount /tmp/not-a-mount 0")),
              threading.Thread(target=flood, args=("fuse", "/home/sysc read /proc/uptime 20000"))]
    for t in floods:
        t.start()
    reads = []
    while any(t.is_alive() for t in floods) and len(reads) < 200:
        out = sh(rt, watch.neighbour, "/home/sysc read /proc/uptime 50", timeout=60)
        reads.append(out.stdout.strip())
    for t in floods:
        t.join(300)
    assert results["umount"].split() == ["22=3000"], results  # EINVAL: not a mount point
    assert results["fuse"].startswith("fail=0 "), results
    assert reads and all(r.startswith("fail=0 ") for r in reads), reads
    watch.check()


def test_lower_runtime_never_gets_a_host_device_as_stdio(rt, make_bundle, cid, tmp_path):
    """crun chowns the container's stdio from the host side: it must only ever see private
    nodes.  A stand-in lower runtime reports what it was given (device, inode) and fails."""
    report = tmp_path / "stdio"
    fake = tmp_path / "fake-runtime"
    fake.write_text("#!/bin/sh\ncase \" $* \" in *\" create \"*) ;; *) exit 3;; esac\n"
                    "a=$(stat -L -c '%t:%T %i' /proc/$$/fd/0); b=$(stat -L -c '%t:%T %i' /proc/$$/fd/1)\n"
                    f"printf '%s\\n%s\\n' \"$a\" \"$b\" > {report}\nexit 3\n")
    fake.chmod(0o755)
    null = os.stat("/dev/null")
    with open("/dev/null", "rb") as stdin, open("/dev/null", "wb") as out:
        proc = subprocess.run(rt.argv("--lower-runtime", str(fake), "create", "--bundle", make_bundle(["true"]), cid),
                              stdin=stdin, stdout=out, stderr=subprocess.PIPE, timeout=60)
    assert proc.returncode != 0
    seen = report.read_text().split("\n")
    assert seen[0].split()[0] == "1:3" and seen[1].split()[0] == "1:3"  # still the null device...
    assert str(null.st_ino) not in (seen[0].split()[1], seen[1].split()[1])  # ...but not the host's node
    assert (os.stat("/dev/null").st_uid, os.stat("/dev/null").st_ino) == (null.st_uid, null.st_ino)
    assert not [n for n in os.listdir("/dev") if n.startswith(".sysbox-stdio")]
    assert cid not in rt.registered()


@pytest.mark.slow
def test_one_containers_writes_never_show_in_anothers_reads(rt, hostile, cid):
    """A truncating write changes the kernel's cached size of the inode written: each container
    has its own /proc/sys inodes, so a neighbour's reads stay whole and its own."""
    a, b = cid + "a", cid + "b"
    hostile(a)
    hostile(b)
    assert sh(rt, b, "echo 32768 > /proc/sys/kernel/pid_max").returncode == 0
    writer = threading.Thread(target=sh, args=(rt, a, "i=0; while [ $i -lt 600 ]; do "
                                                     "echo 40000 > /proc/sys/kernel/pid_max; "
                                                     "echo abc > /proc/sys/kernel/pid_max 2>/dev/null; "
                                                     "i=$((i+1)); done"), kwargs={"timeout": 300})
    writer.start()
    out = sh(rt, b, "bad=0; i=0; while [ $i -lt 1500 ]; do v=$(cat /proc/sys/kernel/pid_max); "
                    "[ \"$v\" = 32768 ] || { bad=$((bad+1)); echo \"bad:$v\" | od -c | head -2; }; "
                    "i=$((i+1)); done; echo bad=$bad", timeout=300)
    writer.join(300)
    assert out.stdout.strip().endswith("bad=0"), out.stdout[-2000:]
    assert sh(rt, a, "cat /proc/sys/kernel/pid_max").stdout.strip() == "40000"
    for c in (a, b):
        assert sh(rt, c, "stat -c %u:%g /proc/sys/kernel/pid_max").returncode == 0


def test_new_mount_api_cannot_undo_immutable_mounts(rt, hostile, watch, cid):
    """open_tree, move_mount, mount_setattr and fsopen reach the same mounts as mount(2)."""
    hostile(cid)
    before = _mountinfo(rt, cid)
    clone, recursive, rdonly = 1, 0x8000, 1
    assert sh(rt, cid, f"/home/sysc opentree /proc {clone}").stdout.strip() == EINVAL  # without the masks
    assert sh(rt, cid, f"/home/sysc opentree /proc {clone | recursive}").stdout.strip() == "ok"
    assert sh(rt, cid, "/home/sysc opentree /tmp 1").stdout.strip() == "ok"  # mounts of its own
    out = sh(rt, cid, "touch /tmp/f && /home/sysc movemount /proc/uptime /tmp/f")
    assert out.stdout.strip() == EINVAL
    if "/proc/bus" in before:
        assert sh(rt, cid, f"/home/sysc setattr /proc/bus {rdonly} 0").stdout.strip() == EPERM
    assert sh(rt, cid, f"/home/sysc setattr /proc {rdonly} {recursive}").stdout.strip() == EPERM
    assert sh(rt, cid, "/home/sysc fsopen proc").stdout.strip() == "Function not implemented"
    assert sh(rt, cid, "/home/sysc fsopen tmpfs").stdout.strip() == "ok"
    assert _mountinfo(rt, cid) == before
    # from a nested user namespace the kernel refuses on its own
    assert sh(rt, cid, f"unshare -Ur /home/sysc opentree /tmp {clone}").stdout.strip() == EPERM
    watch.check()


def test_setuid_files_and_file_caps_never_land_on_host_binds(rt, hostile, watch, cid, tmp_path):
    """Container root is host root on a bind-mounted host dir: a setuid file made there would
    run as host root for any host user."""
    vol = tmp_path / "vol"
    vol.mkdir()
    os.chmod(tmp_path, 0o755)

    def bind(spec: dict) -> None:
        spec["mounts"].append({"destination": "/mnt", "type": "bind", "source": str(vol), "options": ["rbind"]})

    hostile(cid, bind)
    script = ("cd /mnt && touch plain && mkdir shared && "
              "/home/sysc creat suid-new 4755; /home/sysc creat sgid-new 2755; "
              "/home/sysc chmod plain 4755; /home/sysc chmod plain 2711; /home/sysc xattr plain security.capability; "
              "/home/sysc chmod shared 2775; /home/sysc chmod plain 0755; /home/sysc creat ok-new 0644; "
              "touch /tmp/x && /home/sysc chmod /tmp/x 4755")
    out = sh(rt, cid, script)
    assert out.stdout.split("\n")[:9] == [EPERM] * 5 + ["ok"] * 4, out.stdout + out.stderr
    for dirpath, _dirs, files in os.walk(vol):
        for name in files:
            st = os.lstat(os.path.join(dirpath, name))
            assert not st.st_mode & 0o6000, (name, oct(st.st_mode))
            assert "security.capability" not in os.listxattr(os.path.join(dirpath, name))
    assert os.stat(vol / "shared").st_mode & 0o2000  # setgid directories are fine
    assert sorted(os.listdir(vol)) == ["ok-new", "plain", "shared"]
    watch.check()


def test_at_its_fd_limit_sysbox_fs_refuses_work_and_keeps_serving(rt, hostile, watch, cid):
    """The attack runs as the container's init (whose listener sysbox-fs already holds): an
    exec'd process's listener could not even be accepted while sysbox-fs has no fd to spare."""
    script = ("while [ ! -e /tmp/go ]; do sleep 0.05; done; "
              "/home/sysc loop 200 mount p /tmp proc 0 > /tmp/out; touch /tmp/done; sleep 300")
    hostile(cid, args=("sh", "-c", script))
    pid = watch.fs_pid
    soft, hard = (int(x) for x in open(f"/proc/{pid}/limits").read().split("Max open files")[1].split()[:2])
    assert run(["prlimit", f"--pid={pid}", f"--nofile={fd_count(pid) + 2}:{hard}"]).returncode == 0
    try:
        assert sh(rt, cid, "touch /tmp/go").returncode == 0
        assert wait_for(lambda: sh(rt, cid, "test -e /tmp/done").returncode == 0, timeout=120)
        assert rt.fs.proc.poll() is None
    finally:
        assert run(["prlimit", f"--pid={pid}", f"--nofile={soft}:{hard}"]).returncode == 0
    counts = dict(kv.split("=") for kv in sh(rt, cid, "cat /tmp/out").stdout.split())
    assert sum(int(v) for v in counts.values()) == 200 and "0" not in counts, counts  # each refused, answered
    assert sh(rt, cid, "mkdir -p /tmp/p && /home/sysc mount p /tmp/p proc 0").stdout.strip() == "ok"
    watch.check()


def test_manager_starts_over_a_deep_orphan_tree(tmp_path):
    """A 1,100-deep tree left in a special dir made the old manager crash at every start."""
    from integration.daemons import Mgr
    from sysbox.linux.tree import remove_path

    m = Mgr(str(tmp_path / "mgr"), gc_interval=1)
    orphan = os.path.join(m.data_root, "docker", "gone-container")
    os.makedirs(orphan)
    fd = os.open(orphan, os.O_RDONLY | os.O_DIRECTORY)
    try:
        for _ in range(1100):
            os.mkdir("a", dir_fd=fd)
            nfd = os.open("a", os.O_RDONLY | os.O_DIRECTORY, dir_fd=fd)
            os.close(fd)
            fd = nfd
    finally:
        os.close(fd)
    try:
        m.start()
        assert m.call("ping")["pid"] == m.proc.pid
        assert wait_for(lambda: not os.path.exists(orphan), timeout=30), m.read_log()[-2000:]
        assert m.proc.poll() is None
    finally:
        m.stop()
        if os.path.exists(orphan):
            remove_path(orphan)
