"""System containers through sysbox-runc: user namespace, id shifting, mounts, confinement,
lifecycle hygiene.  Real runc, real manager, real images."""

from __future__ import annotations

import json
import os
import subprocess
import time

import pytest

from integration.conftest import cgroup_exists, mounts, run
from sysbox.linux.mountinfo import fstype_of
from sysbox.linux.tree import remove_path
from sysbox.oci.bundle import write_bundle


def own_mounts(*needles: str) -> list[str]:
    """Mounts whose path names this test's containers (other xdist workers mount too)."""
    return [m for m in mounts() if any(n in m for n in needles)]


def uid_map_of(rt, cid: str) -> list[int]:
    out = rt.exec(cid, "cat", "/proc/self/uid_map")
    assert out.returncode == 0, out.stderr
    return [int(x) for x in out.stdout.split()]


@pytest.fixture
def writable_busybox(busybox_rootfs, tmp_path):
    """A private copy of the busybox rootfs, for tests that write into the image."""
    dst = str(tmp_path / "rootfs-copy")
    subprocess.run(["cp", "-a", busybox_rootfs, dst], check=True)
    return dst


def test_user_namespace_and_disjoint_ranges(make_bundle, rt, cid):
    a, b = cid + "a", cid + "b"
    for c in (a, b):
        assert rt("run", "-d", "--bundle", make_bundle(["sleep", "300"], name=c), c).returncode == 0
    map_a, map_b = uid_map_of(rt, a), uid_map_of(rt, b)
    assert map_a[0] == 0 and map_a[2] == 65536 and map_a[1] >= 1 << 24
    assert abs(map_a[1] - map_b[1]) >= 65536
    for c, m in ((a, map_a), (b, map_b)):
        pid = rt.state(c)["pid"]
        assert os.stat(f"/proc/{pid}").st_uid == m[1]  # outside, init runs as the range's base
        gid_map = rt.exec(c, "cat", "/proc/self/gid_map").stdout.split()
        assert gid_map[0] == "0" and gid_map[2] == "65536"
    assert {a, b} <= set(rt.registered())


def test_image_ownership_through_idmapped_rootfs(make_bundle, rt, cid, writable_busybox):
    bundle = make_bundle(["sleep", "300"], rootfs=writable_busybox, readonly=False)
    assert rt("run", "-d", "--bundle", bundle, cid).returncode == 0
    ls = rt.exec(cid, "stat", "-c", "%u:%g", "/bin/busybox", "/etc/passwd")
    assert ls.stdout.split() == ["0:0", "0:0"]
    assert rt.exec(cid, "sh", "-c", "echo inside > /root/made-inside && chown 1000:1000 /etc/hostname").returncode == 0
    made = os.stat(os.path.join(writable_busybox, "root/made-inside"))
    assert (made.st_uid, made.st_gid) == (0, 0)  # lands as 0 in the image dir: nothing was copied or chowned
    assert os.stat(os.path.join(writable_busybox, "etc/hostname")).st_uid == 1000
    bad = rt.exec(cid, "chown", "70000", "/root/made-inside")  # outside the 65536 mapped ids
    assert bad.returncode != 0 and "Invalid argument" in bad.stderr
    assert os.stat(os.path.join(writable_busybox, "root/made-inside")).st_uid == 0
    assert os.path.ismount(os.path.join(rt.state_dir)) is False
    meta_modes = [json.load(open(os.path.join(dp, "meta.json")))["rootfs"]["mode"]
                  for dp, _, files in os.walk(rt.state_dir) if "meta.json" in files and cid in dp]
    assert meta_modes == ["idmap"]


def test_chown_fallback(make_bundle, rt, cid, writable_busybox):
    bundle = make_bundle(["sleep", "300"], rootfs=writable_busybox, readonly=False)
    out = run(rt.argv("--shift-mode", "chown", "run", "-d", "--bundle", bundle, cid))
    assert out.returncode == 0, out.stderr
    base = uid_map_of(rt, cid)[1]
    assert os.stat(os.path.join(writable_busybox, "bin/busybox")).st_uid == base  # shifted on disk
    assert rt.exec(cid, "stat", "-c", "%u", "/bin/busybox").stdout.strip() == "0"
    assert rt.exec(cid, "sh", "-c", "echo x > /root/f").returncode == 0
    assert "shifting ownership" in out.stderr or "shifted" in out.stderr
    assert rt("delete", "--force", cid).returncode == 0
    assert os.stat(os.path.join(writable_busybox, "bin/busybox")).st_uid == 0  # shifted back
    assert os.stat(os.path.join(writable_busybox, "root/f")).st_uid == 0


def test_root_inside_can_mount_and_make_namespaces(make_bundle, rt, cid):
    script = ("mount -t tmpfs tmp /mnt && echo tmpfs-ok && "
              "unshare -n sh -c 'ip -o link | wc -l' && "
              "mkdir /mnt/sub && mount --bind /mnt/sub /mnt && echo bind-ok")
    out = rt("run", "--bundle", make_bundle(["sh", "-c", script]), cid)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["tmpfs-ok", "1", "bind-ok"]


def test_root_inside_cannot_touch_the_host(make_bundle, rt, cid, tmp_path):
    host_panic = open("/proc/sys/kernel/panic").read()
    host_aslr = open("/proc/sys/kernel/randomize_va_space").read()
    fake_ko = tmp_path / "fake.ko"
    fake_ko.write_bytes(b"\x7fELF" + b"\0" * 60)
    checks = {
        "kcore": "head -c 64 /proc/kcore | wc -c",
        "panic": "echo 77 > /proc/sys/kernel/panic && cat /proc/sys/kernel/panic",
        "aslr": "echo 0 > /proc/sys/kernel/randomize_va_space",
        "sysrq": "echo h > /proc/sysrq-trigger",
        "uevent": "echo /bin/sh > /sys/kernel/uevent_helper",
        "module": "insmod /fake.ko",
        "mknod": "mknod /tmp/sda b 8 0 && head -c 1 /tmp/sda",
        "devmem": "head -c 1 /dev/mem",
    }
    spec_bundle = make_bundle(["sleep", "300"])
    spec = json.load(open(os.path.join(spec_bundle, "config.json")))
    spec["mounts"].append({"destination": "/fake.ko", "type": "bind", "source": str(fake_ko), "options": ["bind", "ro"]})
    json.dump(spec, open(os.path.join(spec_bundle, "config.json"), "w"))
    assert rt("run", "-d", "--bundle", spec_bundle, cid).returncode == 0
    results = {name: rt.exec(cid, "sh", "-c", cmd) for name, cmd in checks.items()}
    assert results["kcore"].stdout.strip() == "0"  # masked
    for name in ("aslr", "sysrq", "uevent", "module", "mknod", "devmem"):
        assert results[name].returncode != 0, (name, results[name].stdout)
    assert "Permission denied" in results["aslr"].stderr
    assert results["panic"].stdout.strip() == "77"  # emulated by sysbox-fs: the container's own value
    # EPERM where the kernel has modules, ENOSYS where it was built without them (as here)
    assert any(e in results["module"].stderr for e in ("Operation not permitted", "not support"))
    assert open("/proc/sys/kernel/panic").read() == host_panic
    assert open("/proc/sys/kernel/randomize_va_space").read() == host_aslr


def test_fifty_cycles_leave_nothing(make_bundle, rt, cid):
    bundle = make_bundle(["sleep", "300"])
    for i in range(50):
        c = f"{cid}-{i}"
        assert rt("create", "--bundle", bundle, c).returncode == 0
        assert rt("start", c).returncode == 0
        assert rt("kill", c, "KILL").returncode == 0
        for _ in range(100):
            if rt.state(c)["status"] == "stopped":
                break
            time.sleep(0.02)
        assert rt("delete", c).returncode == 0, c
    assert own_mounts(cid) == []
    assert [x for x in rt.registered() if x.startswith(cid)] == []
    assert [c for c in (f"{cid}-{i}" for i in range(50)) if cgroup_exists(c)] == []
    assert [d for d in os.listdir(os.path.join(rt.mgr.data_root, "docker")) if d.startswith(cid)] == []
    assert not any(cid in name for _, dirs, _ in os.walk(rt.state_dir) for name in dirs)


def test_bundle_config_is_untouched_and_reusable(make_bundle, rt, cid):
    bundle = make_bundle(["true"])
    original = open(os.path.join(bundle, "config.json"), "rb").read()
    for _ in range(2):
        out = rt("run", "--bundle", bundle, cid)
        assert out.returncode == 0, out.stderr
    assert open(os.path.join(bundle, "config.json"), "rb").read() == original


@pytest.mark.parametrize("edit, expect", [
    (lambda s: s["linux"]["resources"].setdefault("devices", []).insert(0, {"allow": True, "access": "rwm"}),
     "linux.resources.devices[0]: access to all host devices (docker --privileged) is not supported"),
    (lambda s: s["linux"].__setitem__("namespaces", [n for n in s["linux"]["namespaces"] if n["type"] != "network"]),
     "linux.namespaces: no network namespace; sharing the host's (--net=host)"),
    (lambda s: s["linux"]["namespaces"].append({"type": "user", "path": "/proc/1/ns/user"}),
     "joining an existing user namespace is not supported"),
    (lambda s: s["linux"].update(uidMappings=[{"containerID": 0, "hostID": 0, "size": 65536}],
                                 gidMappings=[{"containerID": 0, "hostID": 0, "size": 65536}]),
     "linux.uidMappings[0].hostID: must not be 0"),
    (lambda s: s["linux"].update(uidMappings=[{"containerID": 0, "hostID": 300000, "size": 1000}],
                                 gidMappings=[{"containerID": 0, "hostID": 300000, "size": 1000}]),
     "linux.uidMappings: size 1000 is below 65536"),
])
def test_refusals_leave_nothing(make_bundle, rt, cid, edit, expect):
    bundle = make_bundle(["true"])
    path = os.path.join(bundle, "config.json")
    spec = json.load(open(path))
    edit(spec)
    json.dump(spec, open(path, "w"))
    out = rt("create", "--bundle", bundle, cid)
    assert out.returncode == 1
    assert out.stderr.startswith("sysbox-runc: ") and expect in out.stderr and out.stderr.count("\n") == 1
    assert cid not in rt.registered() and own_mounts(cid) == [] and os.listdir(rt.root) == []


def test_spec_mappings_are_honoured_unless_they_overlap(make_bundle, rt, cid):
    pool = rt.mgr.call("status")["pool"]
    own = pool["uid_start"] + (pool["slots"] - 3) * 65536  # inside the pool, far from the slots in use
    bundle = make_bundle(["sleep", "300"])
    path = os.path.join(bundle, "config.json")
    spec = json.load(open(path))
    spec["linux"]["uidMappings"] = [{"containerID": 0, "hostID": own, "size": 65536}]
    spec["linux"]["gidMappings"] = [{"containerID": 0, "hostID": pool["gid_start"] - pool["uid_start"] + own,
                                     "size": 65536}]
    json.dump(spec, open(path, "w"))
    assert rt("run", "-d", "--bundle", bundle, cid).returncode == 0
    assert uid_map_of(rt, cid) == [0, own, 65536]
    clash = rt("create", "--bundle", bundle, cid + "x")
    assert clash.returncode == 1 and "overlaps the range of another container" in clash.stderr
    assert cid + "x" not in rt.registered()


def test_failed_create_halfway_leaves_nothing(make_bundle, rt, cid, tmp_path):
    bundle = make_bundle(["true"])
    path = os.path.join(bundle, "config.json")
    spec = json.load(open(path))
    spec["mounts"].append({"destination": "/data", "type": "bind", "source": str(tmp_path / "absent"),
                           "options": ["bind"]})
    json.dump(spec, open(path, "w"))
    out = rt("create", "--bundle", bundle, cid)
    assert out.returncode != 0
    assert own_mounts(cid) == [] and cid not in rt.registered() and os.listdir(rt.root) == []
    assert cgroup_exists(cid) == []
    assert not any(cid in d for _, dirs, _ in os.walk(rt.state_dir) for d in dirs)


def test_special_dirs_are_mounted_and_owned_by_container_root(make_bundle, rt, cid):
    out = rt("run", "--bundle", make_bundle(["sh", "-c", "stat -c '%u %a %n' /var/lib/docker /var/lib/kubelet; "
                                                         "touch /var/lib/docker/x && echo writable"]), cid)
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines() == ["0 700 /var/lib/docker", "0 755 /var/lib/kubelet", "writable"]


@pytest.fixture
def debian_overlay(rt, tmp_path):  # depends on rt: its containers are deleted before this unmounts
    """The debian-systemd image as containerd presents it: an overlay at bundle/rootfs."""
    from sysbox import images

    lower = images.build("debian-systemd", cache=os.environ.get("SYSBOX_IMAGE_CACHE", images.DEFAULT_CACHE))["rootfs"]
    ov = tmp_path / "ov"
    for d in ("upper", "work", "rootfs"):
        (ov / d).mkdir(parents=True)
    subprocess.run(["mount", "-t", "overlay", "overlay", "-o",
                    f"lowerdir={lower},upperdir={ov}/upper,workdir={ov}/work", str(ov / "rootfs")], check=True)
    yield ov
    while os.path.ismount(ov / "rootfs"):
        subprocess.run(["umount", "-l", str(ov / "rootfs")], check=True)
    remove_path(str(ov))  # refuses to descend into anything still mounted


@pytest.mark.slow
def test_systemd_boots_and_stops(rt, cid, debian_overlay, tmp_path):
    bundle = str(tmp_path / "sd-bundle")
    write_bundle(bundle, str(debian_overlay / "rootfs"), ["/sbin/init"])
    assert rt("run", "-d", "--bundle", bundle, cid).returncode == 0
    state = ""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        state = rt.exec(cid, "systemctl", "is-system-running").stdout.strip()
        if state in ("running", "degraded"):
            break
        time.sleep(0.2)
    listing = rt.exec(cid, "systemctl", "--failed", "--no-legend", "--plain").stdout
    failed = {line.split()[0] for line in listing.splitlines() if line.strip()}
    assert (state, failed) == ("running", set())
    assert rt.exec(cid, "loginctl", "list-sessions").returncode == 0
    assert rt.exec(cid, "sh", "-c", "systemctl start systemd-hostnamed && systemctl is-active systemd-hostnamed").stdout.strip() == "active"
    assert rt.exec(cid, "journalctl", "-b", "--no-pager", "-n", "5").returncode == 0
    assert rt.exec(cid, "sh", "-c", "echo hi > /root/inside").returncode == 0
    base = uid_map_of(rt, cid)[1]
    assert os.stat(debian_overlay / "upper/root/inside").st_uid == base  # upper shifted while running
    assert rt("kill", cid, "37").returncode == 0  # SIGRTMIN+3: systemd's clean shutdown
    deadline = time.monotonic() + 30
    while rt.state(cid)["status"] != "stopped" and time.monotonic() < deadline:
        time.sleep(0.1)
    assert rt.state(cid)["status"] == "stopped"
    assert rt("delete", cid).returncode == 0
    assert os.stat(debian_overlay / "upper/root/inside").st_uid == 0  # shifted back
    assert not os.path.exists(str(debian_overlay / "work") + "-sysbox")
    assert os.path.ismount(debian_overlay / "rootfs")  # the original overlay is back for its owner
    assert os.path.exists(debian_overlay / "rootfs/root/inside")


@pytest.fixture(params=["ext4", "tmpfs", "xfs"])
def rootfs_on(request, busybox_rootfs, tmp_path):
    """A copy of the busybox rootfs on the named filesystem (xfs: a loop-mounted image)."""
    fs = request.param
    mnt = tmp_path / f"fs-{fs}"
    mnt.mkdir()
    mounted = False
    if fs == "tmpfs":
        subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64m", "tmpfs", str(mnt)], check=True)
        mounted = True
    elif fs == "xfs":
        img = tmp_path / "xfs.img"
        with open(img, "wb") as f:
            f.truncate(320 << 20)
        subprocess.run(["mkfs.xfs", "-q", str(img)], check=True)
        subprocess.run(["mount", "-o", "loop", str(img), str(mnt)], check=True)
        mounted = True
    subprocess.run(["cp", "-a", busybox_rootfs, str(mnt / "rootfs")], check=True)
    yield str(mnt / "rootfs"), fs
    if mounted:
        subprocess.run(["umount", str(mnt)], check=True)  # a loop device is released with its last mount


def test_idmapped_rootfs_on_each_filesystem(make_bundle, rt, cid, rootfs_on):
    path, fs = rootfs_on
    assert fstype_of(os.path.dirname(path)) == fs
    out = rt("run", "--bundle", make_bundle(["sh", "-c", "stat -c %u /bin/busybox; touch /root/new"],
                                            rootfs=path, readonly=False), cid)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "0"
    assert os.stat(os.path.join(path, "root/new")).st_uid == 0
    assert "chown" not in out.stderr  # idmapped, no fallback


def test_bind_mounts_are_idmapped(make_bundle, rt, cid, tmp_path):
    shared = tmp_path / "shared"
    shared.mkdir()
    (shared / "host-file").write_text("from the host")
    single = tmp_path / "single.conf"
    single.write_text("one file")
    bundle = make_bundle(["sleep", "300"])
    path = os.path.join(bundle, "config.json")
    spec = json.load(open(path))
    spec["mounts"] += [{"destination": "/data", "type": "bind", "source": str(shared), "options": ["rbind", "rw"]},
                       {"destination": "/etc/single.conf", "type": "bind", "source": str(single), "options": ["bind", "ro"]}]
    json.dump(spec, open(path, "w"))
    assert rt("run", "-d", "--bundle", bundle, cid).returncode == 0
    assert rt.exec(cid, "stat", "-c", "%u:%g", "/data/host-file", "/etc/single.conf").stdout.split() == ["0:0", "0:0"]
    assert rt.exec(cid, "sh", "-c", "echo inside > /data/new && cat /etc/single.conf").stdout == "one file"
    assert os.stat(shared / "new").st_uid == 0  # written by the container's root, lands as host 0
    assert rt.exec(cid, "sh", "-c", "echo x > /etc/single.conf").returncode != 0  # ro is kept
    assert rt("delete", "--force", cid).returncode == 0
    assert not any(str(shared) in m or "binds" in m and cid in m for m in mounts())
