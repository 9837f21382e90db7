"""sysbox-runc's settings: a global flag, else an environment variable, else the config file.

The config file matters where sysbox-runc is started without our arguments: containerd's runc
shim and CRI-O call BinaryName/runtime_path bare, and only the environment or a file can
point them at non-default sockets or at crun.  The file is `key = value` lines (# comments),
keys named like the flags: lower-runtime, mgr-socket, fs-socket, sysbox-state, shift-mode.
Read on every call (lower-runtime is needed even on the hot path), so it stays a plain parse.
"""

from __future__ import annotations

import os

DEFAULT_CONFIG = "/etc/sysbox/sysbox-runc.conf"
KEYS = {"lower-runtime": "SYSBOX_LOWER_RUNTIME", "mgr-socket": "SYSBOX_MGR_SOCKET",
        "fs-socket": "SYSBOX_FS_SOCKET", "sysbox-state": "SYSBOX_RUNC_STATE_DIR", "shift-mode": "SYSBOX_SHIFT_MODE",
        "honor-caps": "SYSBOX_HONOR_CAPS"}

_file: dict[str, str] | None = None


class ConfigError(Exception):
    pass


def config_path() -> str:
    return os.environ.get("SYSBOX_RUNC_CONFIG") or DEFAULT_CONFIG


def parse(text: str, path: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for n, raw in enumerate(text.splitlines(), 1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        key, eq, value = line.partition("=")
        key, value = key.strip(), value.strip().strip('"')
        if not eq or key not in KEYS:
            raise ConfigError(f"{path}:{n}: expected one of {', '.join(KEYS)} = value, got {raw.strip()!r}")
        out[key] = value
    return out


def _from_file() -> dict[str, str]:
    global _file
    if _file is None:
        path = config_path()
        try:
            with open(path) as f:
                text = f.read()
        except FileNotFoundError:
            text = ""
        except OSError as e:
            raise ConfigError(f"{path}: {e.strerror}") from None
        _file = parse(text, path)
    return _file


def get(globals_: dict, key: str) -> str | None:
    """The setting `key` (a flag name), or None when nothing sets it."""
    value = globals_.get(key)
    if isinstance(value, str) and value:
        return value
    return os.environ.get(KEYS[key]) or _from_file().get(key) or None
