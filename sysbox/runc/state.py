"""sysbox-runc's own per-container state, beside the lower runtime's.

<state-dir>/<key>/<id>/ holds the transformed bundle (config.json), the rootfs mount point,
and meta.json, the record of what create did (record.py).  <key> is derived from runc's
--root, so containers of different runc roots (containerd namespaces, tests) never collide.
The directories are 0711: runc bind-mounts root.path onto itself from inside the user
namespace, so every component of that path must be searchable by the container's root;
every file in them is 0600.
"""

from __future__ import annotations

import os

from sysbox.typing_lite import TYPE_CHECKING

if TYPE_CHECKING:
    from typing import Any

DEFAULT_STATE_DIR = "/run/sysbox/runc"
SYSTEMD_MARK = "init-is-systemd"
HONOR_CAPS_MARK = "honor-caps"
JOINED_NS_MARK = "joined-ns"  # the net/ipc/uts namespaces joined by path, for exec (execns.py)
DEVICES_DIR = "devices"  # the tmpfs of linux.devices nodes (steps.Devices), skipped by binds
DEFAULT_RUNC_ROOT = "/run/runc"


def runc_root(globals_: dict[str, Any]) -> str:
    return os.path.abspath(globals_.get("root") or DEFAULT_RUNC_ROOT)


def _sha256_hex(data: bytes) -> str:
    """hashlib loads OpenSSL (~5 ms), and the kill path needs this: use the builtin module."""
    try:
        from _sha256 import sha256  # type: ignore[import-not-found]  # Python 3.11 (no stubs)
    except ImportError:
        try:
            from _sha2 import sha256  # type: ignore[import-not-found]  # Python 3.12+ (no stubs)
        except ImportError:
            from hashlib import sha256
    return sha256(data).hexdigest()


def container_dir(globals_: dict[str, Any], cid: str) -> str:
    from sysbox.runc import settings

    base = settings.get(globals_, "sysbox-state") or DEFAULT_STATE_DIR
    key = _sha256_hex(runc_root(globals_).encode())[:12]
    return os.path.join(base, key, cid)


def makedirs(path: str) -> None:
    """mkdir -p with every created component 0711."""
    missing = []
    while not os.path.isdir(path):
        missing.append(path)
        path = os.path.dirname(path)
    for p in reversed(missing):
        os.mkdir(p, 0o711)
        os.chmod(p, 0o711)


def write_private(path: str, text: str) -> None:
    """Write a state file readable by host root only (0600): the rewritten spec carries the
    caller's environment (secrets), and every path here is visible in containers' mountinfo."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
    try:
        os.fchmod(fd, 0o600)  # an older file of looser mode keeps its mode through O_TRUNC
        data = text.encode()
        while data:
            data = data[os.write(fd, data):]
    finally:
        os.close(fd)


def replace_private(path: str, text: str) -> None:
    """write_private through a temporary file renamed over `path`: readers see the old or
    the new content, never a part (as runc writes its own state.json)."""
    tmp = path + ".sysbox-tmp"
    write_private(tmp, text)
    os.rename(tmp, path)


def runc_state_file(globals_: dict[str, Any], cid: str) -> str:
    return runc_state_path(runc_root(globals_), cid)


def runc_state_path(root: str, cid: str) -> str:
    return os.path.join(root, cid, "state.json")


def restore_bundle(root: str, cid: str, copy: str, bundle: str) -> None:
    """Name the caller's bundle in runc's record, where runc named our rewritten copy.

    runc 1.1 reads the record's "bundle=" labels two ways: `state`, `list` and the hooks take
    the last one (utils.Annotations), `exec` without --process takes the first
    (utils.SearchLabels) and reads config.json there for the process to run.  So the labels end
    with our copy, then the caller's bundle: exec gets our rewritten process (its capabilities),
    everything that shows a state shows the caller's.  A record not in runc's format (another
    lower runtime) is left as it is."""
    from sysbox import jsonfast as json

    path = runc_state_path(root, cid)
    try:
        with open(path) as f:
            record = json.load(f)
        labels = record["config"].get("labels") or []
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return
    record["config"]["labels"] = [lb for lb in labels if not lb.startswith("bundle=")] + \
        [f"bundle={copy}", f"bundle={bundle}"]
    replace_private(path, json.dumps(record))  # runc's own file is 0600 too


def recorded_dir(root: str, cid: str) -> str | None:
    """Our state dir for `cid`, found through runc's own record when the caller did not pass our
    flags.  podman's cleanup process (conmon's exit command) runs `delete` without the
    --runtime-flag options it gave create, so the state dir may not be the default one.  runc
    records the root we gave it (<our dir>/rootfs); it is trusted only if it has our shape:
    <state-dir>/<key of this runc root>/<id> holding a record for this id."""
    from sysbox import jsonfast as json

    def read(path: str) -> dict[str, Any]:
        try:
            with open(path) as f:
                data = json.load(f)
        except (OSError, ValueError):
            return {}
        return data if isinstance(data, dict) else {}

    config = read(runc_state_path(root, cid)).get("config")
    rootfs = config.get("rootfs") if isinstance(config, dict) else None
    if not isinstance(rootfs, str) or not rootfs:
        return None
    cdir = os.path.dirname(os.path.normpath(rootfs))
    key = _sha256_hex(root.encode())[:12]
    if os.path.basename(cdir) != cid or os.path.basename(os.path.dirname(cdir)) != key:
        return None
    from sysbox.runc import record

    return cdir if read(record.path(cdir)).get("id") == cid else None
