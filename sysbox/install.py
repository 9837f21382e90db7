"""`sysbox install docker` / `sysbox uninstall docker`: register sysbox-runc with dockerd.

The runtime is merged into /etc/docker/daemon.json, keeping everything already there; the
first change keeps a backup (daemon.json.sysbox-backup).  Uninstall removes only what install
added (the runtime, and default-runtime if it still names ours).  dockerd must be restarted
to pick the change up; we say so rather than restart someone's Docker.
"""

from __future__ import annotations

import json
import os
import shutil
import sys

from sysbox.errors import SysboxError

DAEMON_JSON = "/etc/docker/daemon.json"
NAME = "sysbox-runc"


def _load(path: str) -> dict:
    try:
        with open(path) as f:
            text = f.read()
    except FileNotFoundError:
        return {}
    if not text.strip():
        return {}
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise SysboxError(f"{path}: invalid JSON at line {e.lineno} column {e.colno}: {e.msg}; fix it first") from None
    if not isinstance(data, dict):
        raise SysboxError(f"{path}: expected a JSON object")
    return data


def write_with_backup(path: str, text: str) -> None:
    """Replace `path` atomically; the first change keeps the original as <path>.sysbox-backup."""
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    backup = path + ".sysbox-backup"
    if os.path.exists(path) and not os.path.exists(backup):
        shutil.copy2(path, backup)
    tmp = path + ".sysbox-tmp"
    with open(tmp, "w") as f:
        f.write(text)
    os.replace(tmp, path)


def _save(path: str, data: dict) -> None:
    write_with_backup(path, json.dumps(data, indent=2) + "\n")


def runtime_path() -> str:
    here = os.path.join(os.path.dirname(sys.executable), NAME)
    found = here if os.path.exists(here) else shutil.which(NAME)
    if not found:
        raise SysboxError(f"{NAME} not found next to {sys.executable} or on PATH")
    return os.path.abspath(found)


def install_docker(path: str = DAEMON_JSON, default: bool = False, runtime_args: list[str] | None = None) -> str:
    data = _load(path)
    runtimes = data.setdefault("runtimes", {})
    if not isinstance(runtimes, dict):
        raise SysboxError(f"{path}: runtimes: expected an object")
    entry: dict = {"path": runtime_path()}
    if runtime_args:
        entry["runtimeArgs"] = list(runtime_args)
    runtimes[NAME] = entry
    if default:
        data["default-runtime"] = NAME
    _save(path, data)
    return (f"registered {NAME} in {path}{' as the default runtime' if default else ''}; "
            f"restart dockerd to use it (e.g. systemctl restart docker), then: docker run --runtime={NAME} ...")


UNITS = ("sysbox.service", "sysbox-mgr.service", "sysbox-fs.service", "sysbox-vms.service")


def install_systemd(unit_dir: str = "/etc/systemd/system") -> str:
    """Write the unit files with this installation's binaries; `systemctl daemon-reload` next."""
    bindir = os.path.dirname(runtime_path())
    src = os.path.join(os.path.dirname(__file__), "data", "systemd")
    os.makedirs(unit_dir, exist_ok=True)
    for unit in UNITS:
        with open(os.path.join(src, unit)) as f:
            text = f.read().replace("@BINDIR@", bindir)
        with open(os.path.join(unit_dir, unit), "w") as f:
            f.write(text)
    return (f"wrote {', '.join(UNITS)} to {unit_dir}; now: systemctl daemon-reload && "
            "systemctl enable --now sysbox.service sysbox-vms.service")


def uninstall_docker(path: str = DAEMON_JSON) -> str:
    data = _load(path)
    runtimes = data.get("runtimes")
    if isinstance(runtimes, dict):
        runtimes.pop(NAME, None)
        if not runtimes:
            data.pop("runtimes")
    if data.get("default-runtime") == NAME:
        data.pop("default-runtime")
    _save(path, data)
    return f"removed {NAME} from {path}; restart dockerd for it to take effect"
