"""Loading and validating an OCI bundle's config.json, with one-line errors naming the field.

jsonschema costs ~60 ms to import, so it is imported only when a spec is validated
(create/run), never on the state/kill/ps path.
"""

from __future__ import annotations

import os

from sysbox import jsonfast as json
from sysbox.typing_lite import TYPE_CHECKING

if TYPE_CHECKING:
    from typing import Any

SCHEMA_PATH = os.path.join(os.path.dirname(__file__), "schema", "runtime-config.schema.json")
_validator: Any = None


class SpecError(Exception):
    """The bundle or its config.json is unusable; str() is one line naming the field or path."""


def field_path(parts: Any) -> str:
    """Render a jsonschema path deque as `linux.namespaces[2].type`."""
    out = ""
    for part in parts:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(top level)"


def _short(value: Any) -> str:
    text = json.dumps(value)
    return text if len(text) <= 40 else text[:37] + "..."


def describe_error(error: Any) -> str:  # noqa: C901 - one branch per jsonschema validator kind, each one line
    """Turn a jsonschema ValidationError into `field: problem` without dumping huge instances."""
    where = field_path(error.absolute_path)
    v, arg, inst = error.validator, error.validator_value, error.instance
    if v == "required":
        missing = [k for k in arg if not isinstance(inst, dict) or k not in inst]
        name = missing[0] if missing else arg[0]
        prefix = "" if where == "(top level)" else where + "."
        return f"{prefix}{name}: required field is missing"
    if v == "type":
        return f"{where}: expected {arg}, got {type(inst).__name__} {_short(inst)}"
    if v == "enum":
        return f"{where}: {_short(inst)} is not one of {', '.join(map(str, arg))}"
    if v == "pattern":
        return f"{where}: {_short(inst)} does not match {arg}"
    if v in ("minimum", "maximum"):
        return f"{where}: {inst} is {'below the minimum' if v == 'minimum' else 'above the maximum'} {arg}"
    if v == "additionalProperties" and isinstance(inst, dict):
        extra = sorted(k for k in inst if k not in error.schema.get("properties", {}))
        return f"{where}: unexpected field {_short(extra[0]) if extra else '?'}"
    if v == "const":
        return f"{where}: must be {_short(arg)}"
    if v == "uniqueItems":
        return f"{where}: items must be unique"
    if v == "maxItems":
        return f"{where}: must have at most {arg} item(s)"
    if v == "maxLength":
        return f"{where}: longer than {arg} characters"
    if v == "minItems":
        return f"{where}: must have at least {arg} item(s)"
    if v == "minLength":
        return f"{where}: must not be empty"
    return f"{where}: {error.message[:120]}"


def _get_validator() -> Any:
    global _validator
    if _validator is None:
        import jsonschema  # lazy: only create/run pay for it

        with open(SCHEMA_PATH) as f:
            schema = json.load(f)
        _validator = jsonschema.Draft202012Validator(schema)
    return _validator


def validate(spec: Any) -> None:
    """Raise SpecError for the most relevant schema violation, then for semantic ones."""
    errors = list(_get_validator().iter_errors(spec))
    if errors:
        import jsonschema

        raise SpecError(describe_error(jsonschema.exceptions.best_match(errors)))
    seen: set[str] = set()
    for i, ns in enumerate(spec.get("linux", {}).get("namespaces", [])):
        if ns["type"] in seen:
            raise SpecError(f"linux.namespaces[{i}].type: duplicate namespace type {ns['type']!r}")
        seen.add(ns["type"])


def load_config(bundle: str) -> dict[str, Any]:
    """Read and parse <bundle>/config.json (no schema validation)."""
    if not os.path.isdir(bundle):
        raise SpecError(f"bundle {bundle}: not a directory")
    path = os.path.join(bundle, "config.json")
    try:
        with open(path, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        raise SpecError(f"{path}: config.json not found in bundle") from None
    except OSError as e:
        raise SpecError(f"{path}: {e.strerror}") from None
    try:
        spec = json.loads(data)
    except UnicodeDecodeError:
        raise SpecError(f"{path}: not valid UTF-8") from None
    except ValueError as e:  # json.JSONDecodeError (importing json for its name costs ~10 ms)
        raise SpecError(f"{path}: invalid JSON at line {getattr(e, 'lineno', '?')} column "
                        f"{getattr(e, 'colno', '?')}: {getattr(e, 'msg', e)}") from None
    if not isinstance(spec, dict):
        raise SpecError(f"{path}: expected a JSON object at the top level, got {type(spec).__name__}")
    return spec


KERNEL_TREES = ("/proc", "/sys", "/dev", "/run/udev")


def rootfs_path(bundle: str, spec: dict[str, Any]) -> str:
    path = spec["root"]["path"]
    return path if os.path.isabs(path) else os.path.join(bundle, path)


def load_bundle(bundle: str, validator: Any = None) -> dict[str, Any]:
    """Load, validate and sanity-check a bundle; the returned spec is safe to transform.

    `validator(spec)` replaces local schema validation (sysbox-runc asks the warm manager)."""
    spec = load_config(bundle)
    (validator or validate)(spec)
    root = rootfs_path(bundle, spec)
    if not os.path.isdir(root):
        raise SpecError(f"root.path: {root} is not a directory")
    real = os.path.realpath(root)
    if real == "/" or any(real == k or real.startswith(k + "/") for k in KERNEL_TREES):
        # idmapping it would hand the container the host's files; shifting it by chown would
        # rewrite the host's ownership (device nodes included)
        raise SpecError(f"root.path: {root} resolves to {real}, a host system tree, not a container's rootfs")
    if "process" not in spec:
        raise SpecError("process: required field is missing (create needs a process to run)")
    if "args" not in spec["process"]:
        raise SpecError("process.args: required field is missing")
    return spec
