"""sysbox-fs's control protocol: JSON lines over a root-only unix socket (see sysbox.ipc).

ping        {}                              -> {version, pid, mountpoint, seccomp_socket, instance}
prepare     {id, uid, gid}                  -> {mountpoint}  the container's own FUSE connection, mounted
            before `runc create` binds its nodes (uid, gid: its root, as host ids)
register    {id, pid, uid, gid, size, masked?, immutable?, instance?} -> {}  the container whose
            init is `pid`; masked: paths under /proc it masks, masked again in procfs it mounts
            later; immutable: absolute mount points (masked and read-only paths) the container
            may not unmount, move away or remount read-write;
            instance: the `ping` instance whose mount the container's spec bound (if another
            sysbox-fs has started since, or none was prepared, a new connection is attached)
unregister  {id}                            -> {removed}
status      {}                              -> {mountpoint, containers: [...]}
"""

from __future__ import annotations

DEFAULT_SOCKET = "/run/sysbox/fs.sock"
DEFAULT_MOUNTPOINT = "/var/lib/sysboxfs"
DEFAULT_PID_FILE = "/run/sysbox/fs.pid"
DEFAULT_SECCOMP_SOCKET = "/run/sysbox/fs-seccomp.sock"
DEFAULT_STATE_DIR = "/run/sysbox/fs"
DEFAULT_HOLDER_SOCKET = "/run/sysbox/fs-holder.sock"

_ID = {"type": "string", "pattern": "^[A-Za-z0-9][A-Za-z0-9_.+-]{0,127}$"}
_U32 = {"type": "integer", "minimum": 0, "maximum": 4294967295}


def _op(name, props=None, required=()):
    return {"type": "object", "additionalProperties": False, "required": ["op", *required],
            "properties": {"op": {"const": name}, **(props or {})}}


REQUESTS = {
    "ping": _op("ping"),
    "status": _op("status"),
    "prepare": _op("prepare", {"id": _ID, "uid": _U32, "gid": _U32}, ("id", "uid", "gid")),
    "register": _op("register", {"id": _ID, "pid": {"type": "integer", "minimum": 1, "maximum": 4194304},
                                 "uid": _U32, "gid": _U32, "size": {"type": "integer", "minimum": 1},
                                 "masked": {"type": "array", "maxItems": 256, "items": {
                                     "type": "string", "pattern": "^[A-Za-z0-9_][A-Za-z0-9_./-]*$", "maxLength": 256}},
                                 "immutable": {"type": "array", "maxItems": 512, "items": {
                                     "type": "string", "pattern": "^/[A-Za-z0-9_./:-]*$", "maxLength": 4096}},
                                 "instance": {"type": "string", "pattern": "^[0-9a-f]{32}$"}},
                    ("id", "pid", "uid", "gid", "size")),
    "unregister": _op("unregister", {"id": _ID}, ("id",)),
}
