"""sysbox.jsonfast against the json module: the same values, the same text, the same errors."""

from __future__ import annotations

import json
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sysbox import jsonfast

values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=8), inner, max_size=5),
    max_leaves=30)


@settings(max_examples=300, deadline=None)
@given(values)
def test_round_trips_as_json_does(v):
    assert jsonfast.dumps(v) == json.dumps(v)
    assert jsonfast.dumps(v, compact=True) == json.dumps(v, separators=(",", ":"))
    text = json.dumps(v, indent=2)
    assert jsonfast.loads(text) == json.loads(text)
    assert jsonfast.loads(text.encode()) == json.loads(text)


@pytest.mark.parametrize("text", ["NaN", "[Infinity, -Infinity]", " \n {\"a\": 1} \t", "\"\\u00e9\\ud83d\\ude00\"",
                                  "1e400", "-0", "123456789012345678901234567890"])
def test_edge_values(text):
    a, b = jsonfast.loads(text), json.loads(text)
    assert repr(a) == repr(b) or (isinstance(a, float) and math.isnan(a) and math.isnan(b))


@pytest.mark.parametrize("text", ["", "{", "{\"a\": 1} x", "[1,]", "\ufeff{}", "tru", "{\"a\" 1}", "[1] [2]",
                                  "\"\\x\"", "\"a\nb\""])
def test_errors_read_as_jsons(text):
    with pytest.raises(json.JSONDecodeError) as ours:
        jsonfast.loads(text)
    with pytest.raises(json.JSONDecodeError) as theirs:
        json.loads(text)
    assert str(ours.value) == str(theirs.value)


def test_bytes_in_other_encodings_go_to_json():
    data = json.dumps({"k": "v"}).encode("utf-16")
    assert jsonfast.loads(data) == {"k": "v"}
    with pytest.raises(UnicodeDecodeError):
        jsonfast.loads(b"\"\xff\"")


@pytest.mark.parametrize("value", [{"a": object()}, {1j: 2}, {"a": {1, 2}}])
def test_unserializable_raises_jsons_type_error(value):
    with pytest.raises(TypeError) as ours:
        jsonfast.dumps(value)
    with pytest.raises(TypeError) as theirs:
        json.dumps(value)
    assert str(ours.value) == str(theirs.value)


def test_a_failed_dump_leaves_no_stale_markers():
    shared = {"x": [1]}
    with pytest.raises(TypeError):
        jsonfast.dumps([shared, object()])
    assert jsonfast.dumps([shared, shared]) == "[{\"x\": [1]}, {\"x\": [1]}]"  # not "circular reference"
    loop: list = []
    loop.append(loop)
    with pytest.raises(ValueError, match="Circular reference"):
        jsonfast.dumps(loop)


def test_errors_without_json_imported():
    """The C scanner looks json.decoder up in sys.modules to raise its error: in sysbox-runc,
    where nothing imported json, a bad config.json must still read as json's error."""
    import subprocess
    import sys

    bad = ['{"ociVersion": "1.0.2",', '{"a": "\\x"}', "[1,]"]
    code = ("import sys; from sysbox import jsonfast\n"
            "assert 'json' not in sys.modules\n"
            f"for text in {bad!r}:\n"
            "    try:\n"
            "        jsonfast.loads(text)\n"
            "    except ValueError as e:\n"
            "        print(type(e).__name__, e)\n")
    out = subprocess.run([sys.executable, "-I", "-c", code], capture_output=True, text=True, timeout=30,
                         cwd=__file__.rsplit("/tests/", 1)[0])
    assert out.returncode == 0, out.stderr
    expected = []
    for text in bad:
        with pytest.raises(json.JSONDecodeError) as e:
            json.loads(text)
        expected.append(f"JSONDecodeError {e.value}")
    assert out.stdout.splitlines() == expected
