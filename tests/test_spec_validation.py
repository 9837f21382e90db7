"""config.json validation against the project's JSON Schema: messages name the field."""

import copy

import pytest

from sysbox.oci import spec as oci

BASE = {
    "ociVersion": "1.0.2-dev",
    "root": {"path": "rootfs"},
    "process": {"cwd": "/", "args": ["sh"], "env": ["PATH=/bin"], "user": {"uid": 0, "gid": 0}},
    "linux": {"namespaces": [{"type": "pid"}, {"type": "mount"}]},
    "mounts": [{"destination": "/proc", "type": "proc", "source": "proc"}],
}


def bad(path, value):
    spec = copy.deepcopy(BASE)
    node = spec
    keys = path.split(".")
    for k in keys[:-1]:
        node = node[int(k)] if k.isdigit() else node[k]
    last = keys[-1]
    if value is KeyError:
        del node[last]
    else:
        node[int(last) if last.isdigit() else last] = value
    return spec


def test_base_is_valid():
    oci.validate(BASE)


@pytest.mark.parametrize("path, value, expect", [
    ("ociVersion", KeyError, "ociVersion: required field is missing"),
    ("ociVersion", 1, "ociVersion: expected string, got int 1"),
    ("root", KeyError, "root: required field is missing"),
    ("root.path", KeyError, "root.path: required field is missing"),
    ("root.path", "", "root.path: must not be empty"),
    ("process.args", "sh", 'process.args: expected array, got str "sh"'),
    ("process.args", [], "process.args: must have at least 1 item(s)"),
    ("process.cwd", "relative", 'process.cwd: "relative" does not match ^/'),
    ("process.env", ["NOEQUALS"], 'process.env[0]: "NOEQUALS" does not match ^[^=]+='),
    ("process.user.uid", -1, "process.user.uid: -1 is below the minimum 0"),
    ("linux.namespaces.0.type", "bogus", 'linux.namespaces[0].type: "bogus" is not one of pid'),
    ("mounts.0.destination", KeyError, "mounts[0].destination: required field is missing"),
    ("mounts.0.options", "ro", 'mounts[0].options: expected array, got str "ro"'),
])
def test_field_named_in_error(path, value, expect):
    with pytest.raises(oci.SpecError) as e:
        oci.validate(bad(path, value))
    assert str(e.value).startswith(expect)
    assert "\n" not in str(e.value)


def test_duplicate_namespace():
    spec = copy.deepcopy(BASE)
    spec["linux"]["namespaces"].append({"type": "pid"})
    with pytest.raises(oci.SpecError, match=r"linux.namespaces\[2\].type: duplicate namespace type 'pid'"):
        oci.validate(spec)


def test_huge_value_is_not_dumped():
    spec = bad("process.args", "x" * 100000)
    with pytest.raises(oci.SpecError) as e:
        oci.validate(spec)
    assert len(str(e.value)) < 200


@pytest.mark.parametrize("access", ["rwm", "mrw", "RWM", "x", ""])
def test_device_access_strings_runc_takes_are_accepted(access):
    """runc 1.1.5 starts containers with any of these (measured): the schema may not refuse them."""
    from sysbox.oci.spec import validate

    spec = {"ociVersion": "1.0.2", "root": {"path": "rootfs"}, "process": {"args": ["true"], "cwd": "/"},
            "linux": {"resources": {"devices": [{"allow": True, "type": "c", "major": 1, "minor": 3,
                                                  "access": access}]}}}
    validate(spec)
