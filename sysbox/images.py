"""Local test images, since no registry is reachable: busybox and debian-systemd.

Each image is cached as <cache>/<name>/rootfs (an OCI bundle rootfs), <cache>/<name>/<name>.tar
(a tarball `docker import` accepts) and <cache>/<name>/image.json (what was built, from which
recipe).  A build goes to a temporary directory and is renamed into place only when complete,
so an interrupted build never leaves a half image that a later run would reuse.
"""

from __future__ import annotations

import io
import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Callable

from sysbox.errors import SysboxError

DEFAULT_CACHE = "/var/cache/sysbox-images"
SUITE = "bookworm"
# Fixed timestamp for files and tar members: two builds of busybox give the same tarball.
EPOCH = 1700000000
DEBIAN_PACKAGES = ["systemd", "systemd-sysv", "dbus", "iproute2", "procps", "docker.io",
                   "containerd", "runc", "iptables", "ca-certificates", "kmod", "less", "openssh-server"]
# Bump when a recipe changes, so cached images built by an older recipe are rebuilt.
RECIPES = {"busybox": 3, "debian-systemd": 3}
# What `docker load` gets: the command and environment a user of the image would expect.
IMAGE_CONFIG = {"busybox": {"Cmd": ["sh"], "Env": ["PATH=/usr/sbin:/usr/bin:/sbin:/bin"]},
                "debian-systemd": {"Cmd": ["/sbin/init"], "StopSignal": "SIGRTMIN+3",
                                   "Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                                           "container=docker"]}}


def say(msg: str) -> None:
    print(f"[image] {msg}", file=sys.stderr, flush=True)


def image_dir(name: str, cache: str = DEFAULT_CACHE) -> str:
    return os.path.join(cache, name)


def cached(name: str, cache: str = DEFAULT_CACHE) -> dict | None:
    """The image.json of a complete build by the current recipe, else None."""
    try:
        with open(os.path.join(image_dir(name, cache), "image.json")) as f:
            meta = json.load(f)
    except (OSError, ValueError):
        return None
    return meta if meta.get("recipe") == RECIPES.get(name) else None


def _write_file(path: str, text: str, mode: int = 0o644) -> None:
    with open(path, "w") as f:
        f.write(text)
    os.chmod(path, mode)


def build_busybox(rootfs: str, mirror: str | None) -> dict:
    """A minimal rootfs: busybox-static and one symlink per applet."""
    busybox = shutil.which("busybox") or "/bin/busybox"
    if not os.path.exists(busybox):
        raise SysboxError("busybox not found: apt-get install busybox-static")
    out = subprocess.run(["file", "-L", busybox], capture_output=True, text=True, check=False).stdout \
        if shutil.which("file") else "statically linked"
    if "dynamically linked" in out:
        raise SysboxError(f"{busybox} is dynamically linked: apt-get install busybox-static")
    for d in ("bin", "sbin", "usr/bin", "usr/sbin", "etc", "dev", "proc", "sys", "tmp", "root",
              "var/log", "var/lib", "run", "home", "mnt"):
        os.makedirs(os.path.join(rootfs, d), exist_ok=True)
    os.chmod(os.path.join(rootfs, "tmp"), 0o1777)
    os.chmod(os.path.join(rootfs, "root"), 0o700)
    shutil.copy2(busybox, os.path.join(rootfs, "bin/busybox"))
    applets = subprocess.run([busybox, "--list-full"], capture_output=True, text=True,
                             check=True).stdout.split()
    for applet in applets:
        link = os.path.join(rootfs, applet)
        os.makedirs(os.path.dirname(link), exist_ok=True)
        if not os.path.lexists(link):
            os.symlink(os.path.relpath(os.path.join(rootfs, "bin/busybox"), os.path.dirname(link)), link)
    _write_file(os.path.join(rootfs, "etc/passwd"),
                "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n")
    _write_file(os.path.join(rootfs, "etc/group"), "root:x:0:\nnogroup:x:65534:\n")
    _write_file(os.path.join(rootfs, "etc/hostname"), "busybox\n")
    _write_file(os.path.join(rootfs, "etc/hosts"), "127.0.0.1\tlocalhost\n::1\tlocalhost\n")
    version = subprocess.run([busybox], capture_output=True, text=True, check=False).stdout.splitlines()
    return {"busybox": version[0] if version else "unknown", "applets": len(applets)}


def check_mirror(mirror: str, suite: str = SUITE, timeout: float = 15) -> None:
    """Fail fast, with a clear message, when the Debian mirror cannot be reached."""
    import urllib.error  # only a build needs them (~30 ms of imports for every other command)
    import urllib.request

    url = f"{mirror.rstrip('/')}/dists/{suite}/Release"
    try:
        with urllib.request.urlopen(urllib.request.Request(url, method="HEAD"), timeout=timeout):
            pass
    except (urllib.error.URLError, OSError, ValueError) as e:
        reason = getattr(e, "reason", e)
        raise SysboxError(f"cannot reach the Debian mirror {mirror} ({url}: {reason}); "
                          "check the network or pass --mirror URL") from None


def build_debian_systemd(rootfs: str, mirror: str | None) -> dict:
    """Debian bookworm minbase with systemd, Docker and containerd, via debootstrap, from
    `mirror` or else the one the host's apt sources name (sysbox/aptsources.py)."""
    if not shutil.which("debootstrap"):
        raise SysboxError("debootstrap not found: apt-get install debootstrap")
    if not mirror:
        from sysbox import aptsources

        mirror = aptsources.host_mirror(SUITE)
    check_mirror(mirror)
    cmd = ["debootstrap", "--variant=minbase", f"--include={','.join(DEBIAN_PACKAGES)}",
           SUITE, rootfs, mirror]
    say("running " + " ".join(cmd))
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    assert proc.stdout is not None
    last_error, count = "", 0
    for line in proc.stdout:
        line = line.rstrip()
        if line.startswith("E:") or "Failed" in line:
            last_error = line
        if line.startswith(("I: Retrieving", "I: Validating")):
            count += 1
            if count % 50 == 0:
                say(f"debootstrap: {count} packages fetched")
        elif line.startswith(("I: ", "E: ", "W: ")):
            say(f"debootstrap: {line[3:]}")
    if proc.wait() != 0:
        raise SysboxError(f"debootstrap failed (exit {proc.returncode}): "
                          f"{last_error or 'see output above'}; mirror {mirror}")
    _configure_debian(rootfs, mirror)
    return {"suite": SUITE, "mirror": mirror, "packages": DEBIAN_PACKAGES}


def _configure_debian(rootfs: str, mirror: str) -> None:
    """Make the debootstrapped tree a container image: no apt caches, a fresh machine-id per boot."""
    for d in ("var/cache/apt/archives", "var/lib/apt/lists"):
        path = os.path.join(rootfs, d)
        for entry in os.listdir(path):
            full = os.path.join(path, entry)
            if os.path.isfile(full) or os.path.islink(full):
                os.unlink(full)
    _write_file(os.path.join(rootfs, "etc/machine-id"), "")  # systemd generates one at boot
    _write_file(os.path.join(rootfs, "etc/hostname"), "syscont\n")
    _write_file(os.path.join(rootfs, "etc/hosts"), "127.0.0.1\tlocalhost syscont\n::1\tlocalhost\n")
    _write_file(os.path.join(rootfs, "etc/apt/sources.list"),
                f"deb {mirror} {SUITE} main\n")
    _configure_ssh(rootfs)


SSH_KEYGEN_UNIT = """[Unit]
Description=SSH host keys of this machine, made at its first boot
ConditionPathExists=!/etc/ssh/ssh_host_ed25519_key
Before=ssh.service

[Service]
Type=oneshot
ExecStart=/usr/bin/ssh-keygen -A

[Install]
WantedBy=ssh.service
"""


def _configure_ssh(rootfs: str) -> None:
    """sshd for `sysbox ssh` and `-p 2222:22`: no host keys in the image (every machine of it
    would share them); each makes its own at first boot.  pam_loginuid cannot write the audit
    login uid from a user namespace, so it may not fail the session."""
    ssh = os.path.join(rootfs, "etc/ssh")
    for name in os.listdir(ssh):
        if name.startswith("ssh_host_"):
            os.unlink(os.path.join(ssh, name))
    unit_dir = os.path.join(rootfs, "etc/systemd/system")
    _write_file(os.path.join(unit_dir, "ssh-hostkeys.service"), SSH_KEYGEN_UNIT)
    wants = os.path.join(unit_dir, "ssh.service.wants")
    os.makedirs(wants, exist_ok=True)
    link = os.path.join(wants, "ssh-hostkeys.service")
    if not os.path.lexists(link):
        os.symlink("../ssh-hostkeys.service", link)
    pam = os.path.join(rootfs, "etc/pam.d/sshd")
    with open(pam) as f:
        text = f.read()
    _write_file(pam, re.sub(r"(?m)^(session\s+)required(\s+pam_loginuid\.so)", r"\1optional\2", text))


BUILDERS: dict[str, Callable[[str, str | None], dict]] = {
    "busybox": build_busybox,
    "debian-systemd": build_debian_systemd,
}


def _tar(rootfs: str, tarball: str) -> str:
    """A reproducible tarball of rootfs (sorted, numeric owners, fixed mtimes); returns its sha256."""
    import hashlib

    subprocess.run(["tar", "--numeric-owner", "--sort=name", f"--mtime=@{EPOCH}", "--format=gnu",
                    "-C", rootfs, "-cf", tarball, "."], check=True)
    h = hashlib.sha256()
    with open(tarball, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def docker_archive(name: str, layer_tar: str, layer_sha: str, out: str) -> None:
    """Write what `docker save` would: one layer (the rootfs tarball), its config, a manifest."""
    import hashlib
    import tarfile

    config = {"architecture": {"x86_64": "amd64", "aarch64": "arm64"}.get(os.uname().machine, os.uname().machine),
              "os": "linux", "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(EPOCH)),
              "config": IMAGE_CONFIG[name], "rootfs": {"type": "layers", "diff_ids": [f"sha256:{layer_sha}"]},
              "history": [{"created_by": f"sysbox image build {name}"}]}
    config_bytes = json.dumps(config, sort_keys=True).encode()
    config_name = hashlib.sha256(config_bytes).hexdigest() + ".json"
    manifest = json.dumps([{"Config": config_name, "RepoTags": [f"local/{name}:latest"],
                            "Layers": [f"{layer_sha}/layer.tar"]}]).encode()

    def add_bytes(tar: tarfile.TarFile, arcname: str, data: bytes) -> None:
        info = tarfile.TarInfo(arcname)
        info.size, info.mtime = len(data), EPOCH
        tar.addfile(info, io.BytesIO(data))

    with tarfile.open(out, "w", format=tarfile.GNU_FORMAT) as tar:
        add_bytes(tar, config_name, config_bytes)
        info = tar.gettarinfo(layer_tar, arcname=f"{layer_sha}/layer.tar")
        info.mtime, info.uid, info.gid, info.uname, info.gname = EPOCH, 0, 0, "", ""
        with open(layer_tar, "rb") as f:
            tar.addfile(info, f)
        add_bytes(tar, "manifest.json", manifest)


def build(name: str, cache: str = DEFAULT_CACHE, mirror: str | None = None,
          force: bool = False) -> dict:
    """Build (or reuse) an image; returns its image.json."""
    if name not in BUILDERS:
        raise SysboxError(f"unknown image {name!r}; known: {', '.join(sorted(BUILDERS))}")
    final = image_dir(name, cache)
    meta = cached(name, cache)
    if meta and not force:
        say(f"{name}: already built at {final} ({meta['built']}), reusing it")
        return meta
    os.makedirs(cache, exist_ok=True)
    import fcntl

    with open(os.path.join(cache, f".{name}.lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # parallel test workers: one builds, the others reuse
        meta = cached(name, cache)
        if meta and not force:
            say(f"{name}: built meanwhile by another process, reusing it")
            return meta
        return _build_locked(name, cache, mirror, final)


def _build_locked(name: str, cache: str, mirror: str | None, final: str) -> dict:
    tmp = os.path.join(cache, f".{name}.build-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    os.makedirs(os.path.join(tmp, "rootfs"))
    start = time.monotonic()
    try:
        say(f"{name}: building in {tmp}")
        info = BUILDERS[name](os.path.join(tmp, "rootfs"), mirror)
        if name == "busybox":  # fixed mtimes make the tarball reproducible
            subprocess.run(["touch", "-h", "-d", f"@{EPOCH}"] + _all_paths(os.path.join(tmp, "rootfs")),
                           check=True)
        say(f"{name}: writing {name}.tar")
        digest = _tar(os.path.join(tmp, "rootfs"), os.path.join(tmp, f"{name}.tar"))
        say(f"{name}: writing {name}.docker.tar (docker load)")
        docker_archive(name, os.path.join(tmp, f"{name}.tar"), digest, os.path.join(tmp, f"{name}.docker.tar"))
        meta = {"name": name, "recipe": RECIPES[name], "built": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                "seconds": round(time.monotonic() - start, 1), "tar_sha256": digest,
                "rootfs": os.path.join(final, "rootfs"), "tarball": os.path.join(final, f"{name}.tar"),
                "docker_archive": os.path.join(final, f"{name}.docker.tar"),
                **info}
        with open(os.path.join(tmp, "image.json"), "w") as f:
            json.dump(meta, f, indent=1)
        if os.path.exists(final):
            shutil.rmtree(final)
        os.rename(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    say(f"{name}: built in {meta['seconds']} s -> {final}")
    return meta


def _all_paths(root: str) -> list[str]:
    paths = [root]
    for dirpath, dirnames, filenames in os.walk(root):
        paths.extend(os.path.join(dirpath, n) for n in dirnames + filenames)
    return paths
