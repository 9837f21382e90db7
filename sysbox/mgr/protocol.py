"""sysbox-mgr's protocol: JSON lines over a root-only unix socket (see sysbox.ipc).

Request:  {"op": NAME, ...arguments}
Reply:    {"ok": true, "result": {...}}
      or  {"ok": false, "error": "one line", "code": CODE}

CODE is one of: bad-request (malformed or unknown op; the connection stays usable),
too-large (the line exceeded ipc.MAX_MESSAGE; the connection is closed), not-found,
conflict, exhausted (no free id range), internal.

Operations
----------
ping        {}                                     -> {version, pid}
register    {id, rootfs, special_dirs?, runtime_root?, mappings?, keep?}
            -> {uid, gid, size, restarted, special_dirs: [{kind, source, destination}]}
            Allocates an exclusive uid and gid range for the container (or, with
            `mappings` {uid, gid, size}, records that caller-chosen range if it overlaps no
            other container's) and creates its special dirs.  Registering an id that is already
            known (a stopped container started again) returns its existing range and dirs.
            keep=true: a container whose stop is not its end (Docker/containerd): from the
            start it is kept, like `unregister keep`, while its rootfs's parent exists - also in
            the moment between runc deleting its state and sysbox-runc's unregister.
update      {id, pid?, state?}                     -> {}
            Records the container's init pid (used to tell live containers from vanished
            ones) and its state: created, running, paused, stopped.
unregister  {id, keep?}                            -> {released}
            keep=false (default): releases the range and removes the special dirs.
            keep=true: the container stopped but may start again (Docker's stop/start):
            range and dirs are kept until its rootfs disappears or it is unregistered.
status      {}                                     -> {pool, containers: [...]}
validate    {spec}                                 -> {}  or error code invalid-spec
            Checks an OCI config.json against the project's schema, so that sysbox-runc does
            not pay jsonschema's import (~60 ms) on every create; the message names the field.
"""

from __future__ import annotations

from sysbox.typing_lite import TYPE_CHECKING

if TYPE_CHECKING:
    from typing import Any

DEFAULT_SOCKET = "/run/sysbox/mgr.sock"
DEFAULT_DATA_ROOT = "/var/lib/sysbox"
DEFAULT_PID_FILE = "/run/sysbox/mgr.pid"

# kind -> where it is mounted inside the container
SPECIAL_DIRS: dict[str, str] = {
    "docker": "/var/lib/docker",
    "containerd": "/var/lib/containerd",
    "kubelet": "/var/lib/kubelet",
    "k0s": "/var/lib/k0s",
    "k3s": "/var/lib/rancher/k3s",
    "rke2": "/var/lib/rancher/rke2",
    "buildkit": "/var/lib/buildkit",
    "containers": "/var/lib/containers",
}
STATES = ("registered", "created", "running", "paused", "stopped")

_ID = {"type": "string", "pattern": "^[A-Za-z0-9][A-Za-z0-9_.+-]{0,127}$"}
_ABS = {"type": "string", "pattern": "^/", "maxLength": 4096}
_U32 = {"type": "integer", "minimum": 0, "maximum": 4294967295}


def _op(name: str, props: dict[str, Any] | None = None, required: tuple[str, ...] = ()) -> dict[str, Any]:
    return {"type": "object", "additionalProperties": False, "required": ["op", *required],
            "properties": {"op": {"const": name}, **(props or {})}}


REQUESTS: dict[str, dict[str, Any]] = {
    "ping": _op("ping"),
    "status": _op("status"),
    "register": _op("register", {
        "id": _ID, "rootfs": _ABS, "runtime_root": _ABS,
        "special_dirs": {"type": "array", "uniqueItems": True, "maxItems": len(SPECIAL_DIRS),
                         "items": {"enum": sorted(SPECIAL_DIRS)}},
        "mappings": {"type": "object", "additionalProperties": False, "required": ["uid", "gid", "size"],
                     "properties": {"uid": {**_U32, "minimum": 1}, "gid": {**_U32, "minimum": 1},
                                    "size": {"type": "integer", "minimum": 65536, "maximum": 16777216}}},
        "keep": {"type": "boolean"},
    }, ("id", "rootfs")),
    "update": _op("update", {"id": _ID, "pid": {"type": "integer", "minimum": 1, "maximum": 4194304},
                             "state": {"enum": list(STATES)}}, ("id",)),
    "unregister": _op("unregister", {"id": _ID, "keep": {"type": "boolean"}}, ("id",)),
    "validate": _op("validate", {"spec": {}}, ("spec",)),
}
