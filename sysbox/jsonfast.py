"""json.loads/json.dumps for sysbox-runc's create and delete, without importing `json`.

`import json` costs sysbox-runc ~10 ms on every create and delete: json.decoder and
json.scanner import `re` (which imports enum and functools) to compile regexes that only the
pure-Python fallback uses.  CPython's C accelerator (`_json`) scans and encodes by itself, so
this module drives it directly: same parser, same output, none of those imports.  Anything
it cannot do (a document that does not parse, a type JSON lacks) goes to the json module, so
errors read exactly as json's.  Where `_json` is missing, this is json itself.
"""

from __future__ import annotations

from sysbox.typing_lite import TYPE_CHECKING

if TYPE_CHECKING:
    from typing import Any

try:
    import _json
except ImportError:  # pragma: no cover - every CPython has it
    _json = None  # type: ignore[assignment]

_WS = " \t\n\r"


class _Context:
    """What the C scanner reads from json.JSONDecoder: json.loads's defaults."""

    strict = True
    object_hook = None
    object_pairs_hook = None
    parse_float = float
    parse_int = int
    parse_constant = {"-Infinity": float("-inf"), "Infinity": float("inf"), "NaN": float("nan")}.__getitem__


def _unserializable(o: object) -> None:
    raise TypeError(f"Object of type {o.__class__.__name__} is not JSON serializable")


if _json is not None:
    _scan = _json.make_scanner(_Context())  # type: ignore[arg-type]  # typeshed wants a JSONDecoder


def loads(data: str | bytes) -> Any:
    """json.loads; bytes must be UTF-8 here (json's other encodings go to json)."""
    try:
        text = data.decode() if isinstance(data, bytes | bytearray) else data
    except UnicodeDecodeError:
        import json

        return json.loads(data)
    if _json is not None and not text.startswith("\ufeff"):
        start = len(text) - len(text.lstrip(_WS))
        try:
            obj, end = _scan(text, start)
        except (StopIteration, ValueError, RecursionError, SystemError):
            # SystemError: the C scanner raises json.decoder.JSONDecodeError only when json.decoder
            # is already imported (it looks in sys.modules); json re-parses and raises properly
            obj, end = None, -1
        if end >= 0 and not text[end:].strip(_WS):
            return obj
    import json

    return json.loads(text)


def load(f: Any) -> Any:
    return loads(f.read())


def dumps(obj: Any, compact: bool = False) -> str:
    """json.dumps(obj), or with separators (",", ":") when compact."""
    if _json is not None:
        # json.dumps's defaults (ensure_ascii, circular check, allow_nan); a new encoder per call,
        # as json makes, so an error part-way leaves no stale circular-check markers behind
        sep = (":", ",") if compact else (": ", ", ")
        encode = _json.make_encoder({}, _unserializable, _json.encode_basestring_ascii, None, *sep, False, False, True)
        try:
            return "".join(encode(obj, 0))
        except (TypeError, ValueError, RecursionError):
            pass  # let json raise its own error
    import json

    return json.dumps(obj, separators=(",", ":") if compact else None)
