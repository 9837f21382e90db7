"""The dev-VM commands: run, ps, exec, stop, start, rm.

A container's life: `run` imports the image, unpacks a bundle, creates a network namespace
and attaches it through CNI, then has sysbox-runc run it detached.  `stop` stops it (systemd
gets its clean-shutdown signal), deletes the runtime's container and detaches the network,
keeping the bundle, so `start` brings the same machine back.  `rm` removes the bundle.  Each
step is written to the container's meta.json first, so a failed or interrupted command can be
undone by `rm -f`, from a fresh CLI.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from typing import Any

from sysbox.devvm import cni, image
from sysbox.devvm.store import Store
from sysbox.errors import SysboxError

NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,39}")
DEFAULT_RUN_ROOT = "/run/sysbox/devvm"


@dataclass
class Env:
    """Where things live; the defaults touch /var/lib/sysbox/devvm and /run/sysbox only."""

    store: Store
    run_root: str = DEFAULT_RUN_ROOT
    mgr_socket: str | None = None
    fs_socket: str | None = None
    sysbox_state: str | None = None
    bridge: str = "sysbox0"
    subnet: str = "10.89.0.0/24"

    def runtime(self) -> list[str]:
        argv = [_bin("sysbox-runc"), "--root", os.path.join(self.run_root, "runc")]
        for flag, value in (("--mgr-socket", self.mgr_socket), ("--fs-socket", self.fs_socket),
                            ("--sysbox-state", self.sysbox_state)):
            if value:
                argv += [flag, value]
        return argv

    def network(self) -> cni.Network:
        return cni.Network(self.store.cni, self.bridge, self.subnet)


def _bin(name: str) -> str:
    here = os.path.join(os.path.dirname(sys.executable), name)
    return here if os.path.exists(here) else (shutil.which(name) or name)


def _call(argv: list[str], timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(argv, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL, check=False)


def ensure_daemons(env: Env) -> None:
    """sysbox-mgr and sysbox-fs must answer; with the default sockets, start them if needed
    (`sysbox daemon`, detached, logging under /var/log/sysbox) - a laptop has no unit for them."""
    from sysbox.fs.protocol import DEFAULT_SOCKET as FS_SOCK
    from sysbox.ipc import IPCError, LineClient
    from sysbox.mgr.protocol import DEFAULT_SOCKET as MGR_SOCK

    sockets = [env.mgr_socket or MGR_SOCK, env.fs_socket or FS_SOCK]

    def up() -> bool:
        for s in sockets:
            try:
                with LineClient(s, timeout=5) as c:
                    c.call("ping")
            except IPCError:
                return False
        return True

    if up():
        return
    if env.mgr_socket or env.fs_socket:
        raise SysboxError(f"sysbox daemons not answering on {' and '.join(sockets)}")
    os.makedirs("/var/log/sysbox", exist_ok=True)
    with open("/var/log/sysbox/daemon.log", "ab") as log:  # the daemon keeps its own copy
        subprocess.Popen([_bin("sysbox"), "daemon", "--log-dir", "/var/log/sysbox"], stdin=subprocess.DEVNULL,
                         stdout=log, stderr=log, start_new_session=True)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if up():
            print("started sysbox-mgr and sysbox-fs (sysbox daemon; log in /var/log/sysbox)", file=sys.stderr)
            return
        time.sleep(0.2)
    raise SysboxError("sysbox daemon did not come up within 30 s; see /var/log/sysbox/daemon.log")


def _parse_volume(spec: str) -> dict[str, Any]:
    parts = spec.split(":")
    if len(parts) not in (2, 3) or (len(parts) == 3 and parts[2] not in ("ro", "rw")):
        raise SysboxError(f"-v {spec}: expected SRC:DST[:ro|rw]")
    src, dst = parts[0], parts[1]
    if not os.path.isabs(src) or not os.path.exists(src):
        raise SysboxError(f"-v {spec}: source {src} must be an existing absolute path")
    if not os.path.isabs(dst) or ".." in dst.split("/"):
        raise SysboxError(f"-v {spec}: destination {dst} must be an absolute path without '..'")
    return {"source": os.path.realpath(src), "destination": dst, "readonly": len(parts) == 3 and parts[2] == "ro"}


def _spec(bundle: str, meta: dict[str, Any], cmd: list[str]) -> None:
    path = os.path.join(bundle, "config.json")
    with open(path) as f:
        spec = json.load(f)
    proc = spec.setdefault("process", {})
    proc["terminal"] = False
    if cmd:
        proc["args"] = list(cmd)
    if not proc.get("args"):
        raise SysboxError(f"image {meta['image']}: no command in the image; give one after the image name")
    spec["hostname"] = meta["name"]
    spaces = [n for n in spec["linux"].get("namespaces", []) if n.get("type") != "network"]
    spec["linux"]["namespaces"] = spaces + [{"type": "network"}]  # runc's, attached by CNI before start
    for v in meta["volumes"]:
        opts = ["rbind", "ro" if v["readonly"] else "rw"]
        spec.setdefault("mounts", []).append({"destination": v["destination"], "type": "bind",
                                              "source": v["source"], "options": opts})
    with open(path + ".tmp", "w") as f:
        json.dump(spec, f, indent=1)
    os.replace(path + ".tmp", path)


def run(env: Env, image_ref: str, name: str | None, ports: list[str], volumes: list[str], cmd: list[str]) -> str:
    name = name or "vm-" + uuid.uuid4().hex[:8]
    if not NAME.fullmatch(name):
        raise SysboxError(f"--name {name!r}: letters, digits, '_', '.', '-' (up to 40), "
                          "starting with a letter or digit")
    mappings = [cni.parse_port(p) for p in ports]
    vols = [_parse_volume(v) for v in volumes]
    ensure_daemons(env)
    with env.store.locked():
        if os.path.exists(os.path.join(env.store.cdir(name), "meta.json")):
            raise SysboxError(f"container {name} already exists (sysbox rm {name} first)")
        tag = image.import_image(env.store, image_ref)
        meta: dict[str, Any] = {"name": name, "id": uuid.uuid4().hex[:12], "image": image_ref, "tag": tag,
                                "ports": mappings, "volumes": vols, "cmd": cmd, "state": "creating",
                                "created": time.time()}
        env.store.save(meta)
        try:
            image.unpack(env.store, tag, os.path.join(env.store.cdir(name), "bundle"), name)
            _spec(os.path.join(env.store.cdir(name), "bundle"), meta, cmd)
            _start(env, meta)
        except BaseException:
            _remove(env, meta)
            raise
    return name


def _netns(env: Env, meta: dict[str, Any]) -> str:
    return os.path.join(env.run_root, "netns", meta["id"])


def _start(env: Env, meta: dict[str, Any]) -> None:
    """The container, then its network, then its process; the record says how far it got.

    The network namespace is the one runc creates inside the container's user namespace (a
    namespace made outside would be owned by the host's, and the container could not mount
    its own sysfs): CNI attaches it between create and start, as for podman."""
    cdir = env.store.cdir(meta["name"])
    os.makedirs(env.run_root, mode=0o711, exist_ok=True)
    pid_file = os.path.join(cdir, "init.pid")
    # the container keeps the stdio create had: files, never a pipe we would wait on forever
    with open(os.path.join(cdir, "console.log"), "ab") as log:
        rc = subprocess.call(env.runtime() + ["--log", os.path.join(cdir, "runtime.log"), "create", "--bundle",
                                              os.path.join(cdir, "bundle"), "--pid-file", pid_file, meta["id"]],
                             stdin=subprocess.DEVNULL, stdout=log, stderr=log, timeout=120)
    if rc != 0:
        raise SysboxError(f"starting {meta['name']}: {_last_error(cdir) or 'sysbox-runc create failed'}")
    meta["state"] = "running"
    env.store.save(meta)
    with open(pid_file) as f:
        pid = int(f.read().strip())
    ns = cni.pin_netns(pid, _netns(env, meta))
    meta["netns"] = True
    env.store.save(meta)
    meta["net"] = env.network().add(meta["id"], ns, meta["ports"])
    meta["ip"] = cni.ip_of(meta["net"])
    env.store.save(meta)
    if meta["ip"] and meta["ip"] not in cni.addresses(ns):  # what CNI reported is really there
        raise SysboxError(f"starting {meta['name']}: CNI reported {meta['ip']}, but the namespace has "
                          f"{cni.addresses(ns) or 'no address'}")
    out = subprocess.run(env.runtime() + ["start", meta["id"]], capture_output=True, text=True, timeout=60, check=False)
    if out.returncode != 0:
        raise SysboxError(f"starting {meta['name']}: {out.stderr.strip() or 'sysbox-runc start failed'}")
    meta["started"] = time.time()
    env.store.save(meta)


def _last_error(cdir: str) -> str:
    """The runtime's last error line (runc's log is JSON lines; sysbox-runc's own are text)."""
    try:
        with open(os.path.join(cdir, "runtime.log")) as f:
            lines = [line.strip() for line in f if line.strip()]
    except FileNotFoundError:
        return ""
    for line in reversed(lines):
        try:
            entry = json.loads(line)
        except ValueError:
            return line
        if entry.get("level") in ("error", "fatal"):
            return str(entry.get("msg", line))
    return ""


def _status(env: Env, meta: dict[str, Any]) -> str:
    if meta.get("state") != "running":
        return meta.get("state", "unknown")
    out = _call(env.runtime() + ["state", meta["id"]], timeout=30)
    if out.returncode != 0:
        return "exited"
    return json.loads(out.stdout).get("status", "unknown")


def ps(env: Env, all_: bool = True) -> list[dict[str, Any]]:
    rows = []
    for name in env.store.names():
        meta = env.store.load(name)
        status = _status(env, meta)
        if not all_ and status != "running":
            continue
        rows.append({"name": name, "status": status, "image": meta["image"], "ip": meta.get("ip") or "",
                     "ports": ",".join(f"{p.get('hostIP', '')}{':' if p.get('hostIP') else ''}{p['hostPort']}->"
                                       f"{p['containerPort']}/{p['protocol']}" for p in meta["ports"])})
    return rows


def exec_(env: Env, name: str, cmd: list[str], tty: bool, interactive: bool) -> int:
    meta = env.store.load(name)
    if _status(env, meta) != "running":
        raise SysboxError(f"container {name} is not running")
    argv = env.runtime() + ["exec"] + (["-t"] if tty else []) + [meta["id"]] + (cmd or ["/bin/sh"])
    if not interactive:
        return subprocess.call(argv, stdin=subprocess.DEVNULL)
    os.execv(argv[0], argv)  # the terminal is the user's, and so is the exit status


def _stop_runtime(env: Env, meta: dict[str, Any], timeout: float) -> None:
    rt = env.runtime()
    if _call(rt + ["state", meta["id"]], timeout=30).returncode == 0:
        _call(rt + ["kill", meta["id"], "TERM"], timeout=30)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            out = _call(rt + ["state", meta["id"]], timeout=30)
            if out.returncode != 0 or json.loads(out.stdout).get("status") == "stopped":
                break
            time.sleep(0.1)
        else:
            _call(rt + ["kill", meta["id"], "KILL"], timeout=30)
        out = _call(rt + ["delete", "--force", meta["id"]], timeout=60)
        if out.returncode != 0 and _call(rt + ["state", meta["id"]], timeout=30).returncode == 0:
            raise SysboxError(f"stopping {meta['name']}: {out.stderr.strip()}")


def _detach_network(env: Env, meta: dict[str, Any]) -> None:
    if meta.get("netns"):
        ns = _netns(env, meta)
        if meta.get("net") is not None:
            env.network().delete(meta["id"], ns if os.path.exists(ns) else "", meta["ports"], meta["net"])
            meta["net"] = None
            env.store.save(meta)
        cni.unpin_netns(_netns(env, meta))
        meta["netns"] = False
        env.store.save(meta)


def stop(env: Env, name: str, timeout: float = 10) -> None:
    with env.store.locked():
        meta = env.store.load(name)
        _stop_runtime(env, meta, timeout)
        _detach_network(env, meta)
        meta["state"] = "exited"
        env.store.save(meta)


def start(env: Env, name: str) -> None:
    ensure_daemons(env)
    with env.store.locked():
        meta = env.store.load(name)
        if _status(env, meta) == "running":
            raise SysboxError(f"container {name} is already running")
        _stop_runtime(env, meta, 0)
        _detach_network(env, meta)
        try:
            _start(env, meta)
        except BaseException:
            _stop_runtime(env, meta, 0)
            _detach_network(env, meta)
            meta["state"] = "exited"
            env.store.save(meta)
            raise


def _remove(env: Env, meta: dict[str, Any]) -> None:
    _stop_runtime(env, meta, 0)
    _detach_network(env, meta)
    from sysbox.linux.tree import remove_path

    remove_path(env.store.cdir(meta["name"]))


def rm(env: Env, name: str, force: bool = False) -> None:
    with env.store.locked():
        meta = env.store.load(name)
        if _status(env, meta) in ("running", "created", "paused") and not force:
            raise SysboxError(f"container {name} is running: sysbox stop {name} first, or rm -f")
        _remove(env, meta)
