"""`sysbox install containerd|crio`: declare sysbox-runc as a runtime handler.

containerd: a block appended to config.toml, between marker comments, that adds a CRI runtime
`sysbox-runc` of type io.containerd.runc.v2 whose BinaryName is our sysbox-runc.  The table
name follows the file's schema version (1: plugins.cri, 2: io.containerd.grpc.v1.cri, 3:
io.containerd.cri.v1.runtime).  The standard library reads TOML but cannot write it, so the
rest of the file is kept byte for byte, and the result is parsed again before it replaces the
original: a file that already defines the handler outside our block, or defines `runtimes`
inline, is refused with a message instead of being made invalid.

CRI-O: a drop-in file in crio.conf.d (CRI-O merges those over crio.conf), which is ours alone.

Both write atomically and keep one backup of a file they change; uninstall removes exactly
what install added.  The daemons are not restarted: that is the caller's (or the k8s
installer's) decision.
"""

from __future__ import annotations

import os
import tomllib

from sysbox.errors import SysboxError

CONTAINERD_CONFIG = "/etc/containerd/config.toml"
CRIO_DROPIN_DIR = "/etc/crio/crio.conf.d"
CRIO_DROPIN = "99-sysbox.conf"
HANDLER = "sysbox-runc"
BEGIN = "# BEGIN sysbox: runtime handler added by `sysbox install containerd`"
END = "# END sysbox"
CRI_PLUGIN = {1: "cri", 2: '"io.containerd.grpc.v1.cri"', 3: '"io.containerd.cri.v1.runtime"'}


def _read(path: str) -> str:
    try:
        with open(path) as f:
            return f.read()
    except FileNotFoundError:
        return ""


def _write(path: str, text: str) -> None:
    from sysbox.install import write_with_backup

    write_with_backup(path, text)


def _parse(path: str, text: str) -> dict:
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise SysboxError(f"{path}: invalid TOML: {e}; fix it first") from None


def _strip_block(text: str) -> str:
    """The file without our block (and without the blank line we put before it)."""
    start = text.find(BEGIN)
    if start < 0:
        return text
    end = text.find(END, start)
    if end < 0:
        raise SysboxError(f"containerd config: '{BEGIN[:15]}...' without '{END}'; remove the partial block by hand")
    end = text.find("\n", end)
    end = len(text) if end < 0 else end + 1
    head = text[:start]
    if head.endswith("\n\n"):
        head = head[:-1]
    return head + text[end:]


def _runtimes(data: dict, version: int) -> dict:
    plugins = data.get("plugins", {})
    cri = plugins.get(CRI_PLUGIN[version].strip('"'), {}) if isinstance(plugins, dict) else {}
    rt = cri.get("containerd", {}).get("runtimes", {}) if isinstance(cri, dict) else {}
    return rt if isinstance(rt, dict) else {}


def containerd_block(version: int, binary: str, handler: str = HANDLER, default_runtime: str | None = None) -> str:
    """Our handler's tables; plus, when the config declares no runtimes at all, the default
    one containerd would otherwise have implied: a `runtimes` table replaces the built-in
    list, and the CRI plugin refuses to load if default_runtime_name then names nothing."""
    runtimes = f'plugins.{CRI_PLUGIN[version]}.containerd.runtimes'
    table = f"{runtimes}.{handler}"
    keep_default = [f"[{runtimes}.{_toml_key(default_runtime)}]", '  runtime_type = "io.containerd.runc.v2"'] \
        if default_runtime else []
    return "\n".join([
        BEGIN,
        *keep_default,
        f"[{table}]",
        '  runtime_type = "io.containerd.runc.v2"',
        f"[{table}.options]",
        f"  BinaryName = {_toml_str(binary)}",
        END,
        "",
    ])


def _toml_key(s: str) -> str:
    return s if s.replace("-", "").replace("_", "").isalnum() else _toml_str(s)


def _toml_str(s: str) -> str:
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


def install_containerd(binary: str, path: str = CONTAINERD_CONFIG, handler: str = HANDLER) -> str:
    original = _read(path)
    rest = _strip_block(original)
    data = _parse(path, rest)
    version = data.get("version", 1 if rest.strip() else 2)
    if version not in CRI_PLUGIN:
        raise SysboxError(f"{path}: version = {version!r}: only config versions 1, 2 and 3 are understood")
    existing = _runtimes(data, version)
    if handler in existing:
        raise SysboxError(f"{path}: runtime {handler!r} is already defined outside sysbox's block; remove it first")
    default_runtime = None
    if not existing:
        plugins = data.get("plugins", {}) if isinstance(data.get("plugins"), dict) else {}
        cri = plugins.get(CRI_PLUGIN[version].strip('"'), {})
        ctd = cri.get("containerd", {}) if isinstance(cri, dict) else {}
        default_runtime = ctd.get("default_runtime_name", "runc") if isinstance(ctd, dict) else "runc"
        if default_runtime == handler:
            default_runtime = None
    head = rest if rest.strip() else "version = 2\n"
    if not head.endswith("\n"):
        head += "\n"
    text = head + "\n" + containerd_block(version, binary, handler, default_runtime)
    try:  # refuse (with the file untouched) what would make the config invalid
        new = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise SysboxError(f"{path}: adding the handler would make it invalid ({e}): is a table defined "
                          "inline? add the handler by hand") from None
    if _runtimes(new, version).get(handler, {}).get("options", {}).get("BinaryName") != binary:
        raise SysboxError(f"{path}: the runtimes table cannot be extended (is it defined inline?); "
                          "add the handler by hand")
    if text != original:
        _write(path, text)
    return (f"registered runtime handler {handler!r} in {path}; restart containerd, then e.g. a RuntimeClass with "
            f"handler: {handler}, or: ctr run --runtime io.containerd.runc.v2 --runc-binary {binary} ...")


def uninstall_containerd(path: str = CONTAINERD_CONFIG) -> str:
    original = _read(path)
    rest = _strip_block(original)
    if rest != original:
        _write(path, rest)
        return f"removed sysbox's runtime handler from {path}; restart containerd for it to take effect"
    return f"{path} has no sysbox runtime handler; nothing to do"


def crio_dropin(binary: str, handler: str = HANDLER) -> str:
    return "\n".join([
        "# written by `sysbox install crio`; removed by `sysbox uninstall crio`",
        f"[crio.runtime.runtimes.{handler}]",
        f"runtime_path = {_toml_str(binary)}",
        'runtime_type = "oci"',
        "",
    ])


def install_crio(binary: str, dropin_dir: str = CRIO_DROPIN_DIR, handler: str = HANDLER) -> str:
    path = os.path.join(dropin_dir, CRIO_DROPIN)
    text = crio_dropin(binary, handler)
    _parse(path, text)
    if _read(path) != text:
        _write(path, text)
    return f"wrote {path} (runtime {handler!r}); restart CRI-O to use it"


def uninstall_crio(dropin_dir: str = CRIO_DROPIN_DIR) -> str:
    path = os.path.join(dropin_dir, CRIO_DROPIN)
    for p in (path, path + ".sysbox-backup"):
        try:
            os.unlink(p)
        except FileNotFoundError:
            pass
    return f"removed {path}; restart CRI-O for it to take effect"
