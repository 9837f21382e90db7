"""The dev-VM life cycle: run, ps, exec, stop, start (--all), rm.

`run` imports the image and unpacks it once into the store (image.shared_layer), gives the VM
an empty layer over it (layer.py), writes its hostname, hosts and ssh keys into that layer,
and starts it: the overlay is mounted, sysbox-runc creates the container, CNI attaches its
network namespace, sysbox-runc starts it.  `stop` stops it (systemd gets its clean-shutdown
signal), deletes the runtime's container, detaches the network and unmounts the layer, so
`start` brings the same machine back.  `rm` removes the VM's directory, never the image.
Each step is written to the VM's meta.json first, so a failed or interrupted command can be
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
from typing import Any, NamedTuple

from sysbox.devvm import cni, image, layer, vmspec
from sysbox.devvm.store import Store, write_json
from sysbox.errors import SysboxError

NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,39}")
DEFAULT_RUN_ROOT = "/run/sysbox/devvm"


class Env(NamedTuple):
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


class RunOptions(NamedTuple):
    """What `sysbox run` was asked for, parsed and checked before anything is made.  (Named
    tuples, not dataclasses: dataclasses cost every `sysbox` call ~10 ms of imports.)"""

    image: str
    name: str | None = None
    ports: list[str] = []  # noqa: RUF012 - a NamedTuple default, never mutated
    volumes: list[str] = []  # noqa: RUF012
    cmd: list[str] = []  # noqa: RUF012
    env: list[str] = []  # noqa: RUF012
    hostname: str | None = None
    memory: str | None = None
    cpus: str | None = None
    cpuset: str | None = None
    pids: str | None = None
    restart: str = "no"
    ssh_keys: list[str] | None = None  # None: the invoking user's ~/.ssh/*.pub, if any


def check_name(name: str, flag: str = "--name") -> str:
    if not NAME.fullmatch(name):
        raise SysboxError(f"{flag} {name!r}: letters, digits, '_', '.', '-' (up to 40), "
                          "starting with a letter or digit")
    return name


def _meta(opts: RunOptions) -> dict[str, Any]:
    from sysbox.devvm import ssh

    name = check_name(opts.name or "vm-" + uuid.uuid4().hex[:8])
    meta: dict[str, Any] = {
        "name": name, "id": uuid.uuid4().hex[:12], "image": opts.image,
        "ports": [cni.parse_port(p) for p in opts.ports], "volumes": [_parse_volume(v) for v in opts.volumes],
        "cmd": list(opts.cmd), "env": vmspec.parse_env(opts.env, dict(os.environ)),
        "hostname": vmspec.parse_hostname(opts.hostname) if opts.hostname else None,
        "memory": vmspec.parse_memory(opts.memory) if opts.memory else None,
        "cpus": vmspec.parse_cpus(opts.cpus) if opts.cpus else None,
        "cpuset": vmspec.parse_cpuset(opts.cpuset) if opts.cpuset else None,
        "pids": vmspec.parse_pids(opts.pids) if opts.pids else None,
        "restart": vmspec.parse_restart(opts.restart), "state": "creating", "created": time.time(),
    }
    meta.update(ssh.keys_for_run(opts.ssh_keys))
    return meta


def _taken_ports(env: Env, but: str | None = None) -> dict[str, list[dict[str, Any]]]:
    """Ports of the VMs whose network is attached (their DNAT rules exist), by VM name."""
    metas = [env.store.load(n) for n in env.store.names() if n != but]
    return {m["name"]: m["ports"] for m in metas if m.get("net") is not None}


def write_bundle(env: Env, meta: dict[str, Any]) -> None:
    """The VM's config.json: the image's spec (unpacked once with the image) and its options."""
    with open(os.path.join(env.store.layer(meta["tag"]), "config.json")) as f:
        spec = vmspec.apply(json.load(f), meta)
    bundle = os.path.join(env.store.cdir(meta["name"]), "bundle")
    os.makedirs(bundle, mode=0o711, exist_ok=True)
    write_json(os.path.join(bundle, "config.json"), spec)


def write_into_layer(point: str, name: str, files: list[tuple[str, bytes, int, int]]) -> None:
    """(path, data, mode, parent dirs' mode) written into a VM's mounted layer, resolved inside it."""
    from sysbox.linux import inroot

    for path, data, mode, dir_mode in files:
        err = inroot.write_file(point, path, data, mode, dir_mode=dir_mode)
        if err:
            raise SysboxError(f"container {name}: writing {path} into its layer: {os.strerror(err)}")


def identity_files(hostname: str) -> list[tuple[str, bytes, int, int]]:
    """/etc/hostname and /etc/hosts of a VM called `hostname` (systemd sets the hostname from the file)."""
    return [("/etc/hostname", f"{hostname}\n".encode(), 0o644, 0o755),
            ("/etc/hosts", vmspec.hosts_file(hostname), 0o644, 0o755)]


def _provision(env: Env, meta: dict[str, Any]) -> None:
    """What makes the machine this VM: its hostname, hosts and root's authorized_keys, written
    into its own layer (so `hostnamectl` or a user's edits later persist).  The layer stays
    mounted for _start (undone by _stop_runtime)."""
    files = identity_files(meta.get("hostname") or meta["name"])
    if meta.get("ssh_keys"):
        files.append(("/root/.ssh/authorized_keys", "".join(k + "\n" for k in meta["ssh_keys"]).encode(), 0o600, 0o700))
    write_into_layer(layer.mount(env.store, meta), meta["name"], files)


def run(env: Env, opts: RunOptions) -> str:
    meta = _meta(opts)
    name = meta["name"]
    ensure_daemons(env)
    with env.store.locked():
        if env.store.exists(name):
            raise SysboxError(f"container {name} already exists (sysbox rm {name} first)")
        cni.check_ports_free(meta["ports"], _taken_ports(env))
        meta["tag"] = image.import_image(env.store, opts.image)
        image.shared_layer(env.store, meta["tag"])
        meta["layered"] = True
        env.store.save(meta)
        try:
            layer.create(env.store, meta)
            write_bundle(env, meta)
            _provision(env, meta)
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
    if meta.get("layered"):
        layer.mount(env.store, meta)
    pid_file = os.path.join(cdir, "init.pid")
    os.close(os.open(os.path.join(cdir, "runtime.log"), os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o600))  # before runc
    # the container keeps the stdio create had: files, never a pipe we would wait on forever
    console = os.open(os.path.join(cdir, "console.log"), os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600)
    with os.fdopen(console, "ab") as log:
        rc = subprocess.call(env.runtime() + ["--log", os.path.join(cdir, "runtime.log"), "create", "--bundle",
                                              os.path.join(cdir, "bundle"), "--pid-file", pid_file, meta["id"]],
                             stdin=subprocess.DEVNULL, stdout=log, stderr=log, timeout=120)
    if rc != 0:
        raise SysboxError(f"starting {meta['name']}: {_last_error(cdir) or 'sysbox-runc create failed'}")
    with open(pid_file) as f:
        pid = int(f.read().strip())
    meta["state"] = "running"
    meta["shifted"] = _id_range(pid) if meta.get("layered") else None  # the upper's ids, until delete
    env.store.save(meta)
    ns = cni.pin_netns(pid, _netns(env, meta))
    meta["netns"] = True
    env.store.save(meta)
    meta["net"] = env.network().add(meta["id"], ns, meta["ports"])
    meta["ip"] = cni.ip_of(meta["net"])
    env.store.save(meta)
    found = cni.address(ns)
    if meta["ip"] and meta["ip"] != found:  # what CNI reported is really there
        raise SysboxError(f"starting {meta['name']}: CNI reported {meta['ip']}, but the namespace has "
                          f"{found or 'no address'} on eth0")
    out = subprocess.run(env.runtime() + ["start", meta["id"]], capture_output=True, text=True, timeout=60, check=False)
    if out.returncode != 0:
        raise SysboxError(f"starting {meta['name']}: {out.stderr.strip() or 'sysbox-runc start failed'}")
    meta["started"] = time.time()
    env.store.save(meta)


def _id_range(pid: int) -> list[int]:
    """[uid base, gid base, size] of the VM's user namespace: what its upper is shifted by."""
    def first(kind: str) -> list[int]:
        with open(f"/proc/{pid}/{kind}_map") as f:
            inside, outside, size = (int(x) for x in f.readline().split())
        return [outside - inside, size]

    uid, size = first("uid")
    gid, _ = first("gid")
    return [uid, gid, size]


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


def status(env: Env, meta: dict[str, Any]) -> str:
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
        state = status(env, meta)
        if not all_ and state != "running":
            continue
        rows.append({"name": name, "status": state, "image": meta["image"], "ip": meta.get("ip") or "",
                     "ports": ",".join(f"{p.get('hostIP', '')}{':' if p.get('hostIP') else ''}{p['hostPort']}->"
                                       f"{p['containerPort']}/{p['protocol']}" for p in meta["ports"])})
    return rows


def exec_(env: Env, name: str, cmd: list[str], tty: bool, interactive: bool) -> int:
    meta = env.store.load(name)
    if status(env, meta) != "running":
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
        if meta.get("shifted"):  # sysbox-runc's delete shifted the upper back
            meta["shifted"] = None
            env.store.save(meta)
    if meta.get("layered"):
        layer.unmount(env.store, meta)
        layer.unshift_if_stale(env.store, meta)  # a run the runtime forgot (host crash): 0-based again


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
        if status(env, meta) == "running":
            raise SysboxError(f"container {name} is already running")
        _start_again(env, meta)


def _start_again(env: Env, meta: dict[str, Any]) -> None:
    stop_quiet(env, meta)
    cni.check_ports_free(meta["ports"], _taken_ports(env, but=meta["name"]))
    try:
        _start(env, meta)
    except BaseException:
        stop_quiet(env, meta)
        meta["state"] = "exited"
        env.store.save(meta)
        raise


def restart_if_died(env: Env, name: str) -> bool:
    """Start a --restart always VM whose init exited by itself (its record still says
    running: `stop` marks it exited before it lets go of the store's lock)."""
    with env.store.locked():
        if not env.store.exists(name):
            return False
        meta = env.store.load(name)
        if meta.get("restart") != "always" or meta.get("state") != "running" or status(env, meta) == "running":
            return False
        _start_again(env, meta)
        return True


def stop_quiet(env: Env, meta: dict[str, Any]) -> None:
    """Whatever the runtime and CNI still hold of a VM that is not running, released."""
    _stop_runtime(env, meta, 0)
    _detach_network(env, meta)


def _remove(env: Env, meta: dict[str, Any]) -> None:
    stop_quiet(env, meta)
    from sysbox.linux.tree import remove_path

    remove_path(env.store.cdir(meta["name"]))


def rm(env: Env, name: str, force: bool = False) -> None:
    with env.store.locked():
        meta = env.store.load(name)
        if status(env, meta) in ("running", "created", "paused") and not force:
            raise SysboxError(f"container {name} is running: sysbox stop {name} first, or rm -f")
        _remove(env, meta)


def start_all(env: Env) -> list[tuple[str, str | None]]:
    """Start every VM made with --restart always that is not running (what the boot unit
    runs); returns (name, error or None) for each one tried.  One VM's failure does not keep
    the others down."""
    results: list[tuple[str, str | None]] = []
    for name in env.store.names():
        try:
            meta = env.store.load(name)
        except SysboxError:
            continue  # removed meanwhile
        if meta.get("restart") != "always" or meta.get("state") == "creating":
            continue
        if status(env, meta) == "running":
            continue
        try:
            start(env, name)
            results.append((name, None))
        except SysboxError as e:
            results.append((name, str(e)))
    return results


def images(env: Env, sizes: bool = True) -> list[dict[str, Any]]:
    users: dict[str, list[str]] = {}
    for name in env.store.names():
        users.setdefault(env.store.load(name).get("tag", ""), []).append(name)
    rows = image.list_images(env.store, users)
    for r in rows:
        r["size"] = image.layer_size(env.store.layer(r["id"])) if sizes and r["unpacked"] else None
    return rows


def rmi(env: Env, ref: str) -> str:
    with env.store.locked():
        tag = image.resolve(env.store, ref)
        users = [n for n in env.store.names() if env.store.load(n).get("tag") == tag]
        if users:
            raise SysboxError(f"image {ref} is in use by {', '.join(users)} (sysbox rm them first)")
        image.remove_image(env.store, tag)
    return tag
