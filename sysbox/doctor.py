"""`sysbox doctor`: can this host run system containers, and if not, what to do about it.

Every check tries the real thing where it can (create a user namespace, idmap a directory
on each filesystem sysbox will use, mount an overlay) instead of trusting version numbers.
"""

from __future__ import annotations

import os
import platform
import shutil
import subprocess
import tempfile
from dataclasses import dataclass

from sysbox import subid


@dataclass
class Check:
    name: str
    ok: bool
    detail: str
    fix: str = ""
    required: bool = True

    @property
    def status(self) -> str:
        return "ok" if self.ok else ("MISSING" if self.required else "warn")


def _kernel() -> Check:
    rel = platform.release()
    try:
        major, minor = (int(x) for x in rel.split(".")[:2])
    except ValueError:
        return Check("kernel", False, f"cannot parse {rel!r}", "use Linux >= 5.19")
    ok = (major, minor) >= (5, 12)
    detail = f"{rel}" + ("" if (major, minor) >= (5, 19) else " (< 5.19: no idmapped lower layers for overlayfs)")
    return Check("kernel", ok, detail, "upgrade to Linux >= 5.19 (idmapped mounts)")


def _userns() -> Check:
    try:
        with open("/proc/sys/user/max_user_namespaces") as f:
            limit = int(f.read())
    except OSError:
        return Check("user namespaces", False, "kernel without CONFIG_USER_NS",
                     "use a kernel built with CONFIG_USER_NS=y")
    if limit == 0:
        return Check("user namespaces", False, "user.max_user_namespaces = 0",
                     "sysctl -w user.max_user_namespaces=15000")
    from sysbox.linux.idmap import userns_fd

    try:
        userns_fd(100000, 100000, 65536)
    except OSError as e:
        return Check("user namespaces", False, f"creating one failed: {e}",
                     "check user.max_user_namespaces and any LSM policy")
    return Check("user namespaces", True, f"max {limit}, created and mapped one")


def _existing_parent(path: str) -> str:
    while not os.path.isdir(path):
        path = os.path.dirname(path)
    return path


def _idmap_on(path: str) -> tuple[bool, str]:
    from sysbox.linux.idmap import idmapped_clone
    from sysbox.linux.mountinfo import fstype_of

    base = _existing_parent(path)
    fstype = fstype_of(base)
    try:
        tmp = tempfile.mkdtemp(prefix=".sysbox-doctor-", dir=base)
    except OSError as e:
        return False, f"{base} ({fstype}): cannot create a test dir: {e.strerror}"
    try:
        fd = idmapped_clone(tmp, 100000, 100000)
        os.close(fd)
        return True, f"{base} ({fstype})"
    except OSError as e:
        return False, f"{base} ({fstype}): {e.strerror or e}"
    finally:
        os.rmdir(tmp)


def _idmap(paths: list[str]) -> Check:
    results = [_idmap_on(p) for p in paths]
    ok = all(r[0] for r in results)
    return Check("idmapped mounts", ok, "; ".join(r[1] for r in results),
                 "put /var/lib/sysbox on ext4, xfs, btrfs or tmpfs (kernel >= 6.3); "
                 "sysbox-runc falls back to chown otherwise", required=False)


def _filesystems() -> set[str]:
    with open("/proc/filesystems") as f:
        return {line.split()[-1] for line in f if line.strip()}


def _overlay() -> Check:
    if "overlay" not in _filesystems():
        subprocess.run(["modprobe", "overlay"], capture_output=True, check=False)
    if "overlay" not in _filesystems():
        return Check("overlayfs", False, "not in /proc/filesystems", "modprobe overlay")
    from sysbox.linux import syscalls as sc

    with tempfile.TemporaryDirectory(prefix="sysbox-doctor-ovl-") as d:
        for sub in ("lower", "upper", "work", "merged"):
            os.mkdir(os.path.join(d, sub))
        try:
            sc.mount("overlay", f"{d}/merged", "overlay", 0,
                     f"lowerdir={d}/lower,upperdir={d}/upper,workdir={d}/work")
            sc.umount2(f"{d}/merged")
        except OSError as e:
            return Check("overlayfs", False, f"test mount failed: {e.strerror}", "modprobe overlay")
    return Check("overlayfs", True, "test mount ok")


def _fuse() -> Check:
    missing = []
    if not os.path.exists("/dev/fuse"):
        missing.append("/dev/fuse")
    if "fuse" not in _filesystems():
        subprocess.run(["modprobe", "fuse"], capture_output=True, check=False)
        if "fuse" not in _filesystems():
            missing.append("fuse filesystem")
    if not shutil.which("fusermount3"):
        missing.append("fusermount3")
    if missing:
        return Check("FUSE", False, "missing: " + ", ".join(missing), "apt-get install fuse3; modprobe fuse")
    return Check("FUSE", True, "/dev/fuse, fuse, fusermount3")


def cgroup_layout() -> tuple[str, list[str], str | None]:
    """('v1'|'v2'|'hybrid', v1 hierarchy names, v2 mount point)."""
    from sysbox.linux import mountinfo

    v1, v2 = [], None
    for m in mountinfo.read():
        if m.fstype == "cgroup2":
            v2 = v2 or m.point
        elif m.fstype == "cgroup":
            v1.append(os.path.basename(m.point))
    mode = "hybrid" if v1 and v2 else ("v1" if v1 else "v2")
    return mode, v1, v2


def _cgroups() -> Check:
    mode, v1, v2 = cgroup_layout()
    if not v1 and not v2:
        return Check("cgroups", False, "no cgroup filesystem mounted", "mount cgroup2 on /sys/fs/cgroup")
    detail = f"{mode}: " + (f"v1 [{', '.join(v1)}]" if v1 else "") + (f" v2 at {v2}" if v2 else "")
    return Check("cgroups", True, detail.strip())


def _runc() -> Check:
    from sysbox.runc import lower

    try:
        from sysbox.runc import settings

        path = lower.find(settings.get({}, "lower-runtime"))
    except lower.LowerRuntimeError as e:
        return Check("runc", False, str(e), "apt-get install runc")
    out = subprocess.run([path, "--version"], capture_output=True, text=True, check=False).stdout.splitlines()
    return Check("runc", True, f"{path}: {out[0] if out else 'unknown version'}")


def _seccomp() -> Check:
    try:
        with open("/proc/sys/kernel/seccomp/actions_avail") as f:
            actions = f.read().split()
    except OSError:
        return Check("seccomp notify", False, "no /proc/sys/kernel/seccomp", "use a kernel with CONFIG_SECCOMP", False)
    ok = "user_notif" in actions
    return Check("seccomp notify", ok, "user_notif available" if ok else "user_notif missing",
                 "use Linux >= 5.5", required=False)


def _subids() -> Check:
    parts = []
    for path in (subid.SUBUID, subid.SUBGID):
        try:
            ranges = subid.read_ranges(path, subid.USER)
        except OSError:
            ranges = []
        if not ranges:
            return Check("subuid/subgid", False, f"no '{subid.USER}' entry in {path}",
                         "sysbox-mgr adds one when it starts", required=False)
        total = sum(r[1] for r in ranges)
        parts.append(f"{path}: {total // 65536} x 65536 ids from {ranges[0][0]}")
    return Check("subuid/subgid", True, "; ".join(parts))


def _root() -> Check:
    return Check("running as root", os.geteuid() == 0, f"euid {os.geteuid()}", "run as root (sudo)")


def run_checks(paths: list[str] | None = None) -> list[Check]:
    paths = paths or ["/var/lib/sysbox", "/var/cache/sysbox-images"]
    checks = [_root(), _kernel()]
    if os.geteuid() == 0:
        checks += [_userns(), _idmap(paths), _overlay()]
    checks += [_fuse(), _cgroups(), _seccomp(), _runc(), _subids()]
    return checks


def render(checks: list[Check]) -> str:
    width = max(len(c.name) for c in checks)
    lines = [f"{'CHECK':<{width}}  {'RESULT':<7}  DETAIL"]
    for c in checks:
        lines.append(f"{c.name:<{width}}  {c.status:<7}  {c.detail}")
        if not c.ok and c.fix:
            lines.append(f"{'':<{width}}  {'':<7}  fix: {c.fix}")
    missing = [c.name for c in checks if not c.ok and c.required]
    warns = [c.name for c in checks if not c.ok and not c.required]
    if missing:
        lines.append(f"verdict: NOT READY - missing: {', '.join(missing)}")
    else:
        lines.append("verdict: ready to run system containers" + (f" (warnings: {', '.join(warns)})" if warns else ""))
    return "\n".join(lines)
