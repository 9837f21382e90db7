"""The pure spec transformations (no host access): what a system container's spec looks like."""

import copy
import json

import pytest

from sysbox.runc import transform
from sysbox.runc.transform import Context, TransformError, caps, namespaces, seccomp

CTX = Context(uid=1 << 24, gid=(1 << 24) + 7, size=65536, bundle="/b",
              cap_last_cap=40, special_dirs=[{"kind": "docker", "source": "/var/lib/sysbox/docker/c",
                                              "destination": "/var/lib/docker"}])
BASE = {
    "ociVersion": "1.0.2",
    "root": {"path": "rootfs"},
    "process": {"args": ["/sbin/init"], "cwd": "/", "user": {"uid": 0, "gid": 0},
                "capabilities": {"bounding": ["CAP_KILL"]}, "apparmorProfile": "docker-default"},
    "mounts": [
        {"destination": "/proc", "type": "proc", "source": "proc"},
        {"destination": "/sys", "type": "sysfs", "source": "sysfs", "options": ["ro", "nosuid"]},
        {"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup", "options": ["ro"]},
        {"destination": "/sys/fs/cgroup/memory", "type": "bind", "source": "/x", "options": ["bind"]},
        {"destination": "/run/secrets", "type": "bind", "source": "secrets", "options": ["rbind"]},
    ],
    "linux": {
        "namespaces": [{"type": t} for t in ("pid", "ipc", "uts", "mount", "network")],
        "readonlyPaths": ["/proc/bus", "/proc/sys", "/proc/sysrq-trigger"],
        "maskedPaths": ["/proc/kcore"],
        "sysctl": {"net.ipv4.ping_group_range": "0 2147483647"},
        "seccomp": {"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [
            {"names": ["read", "mount", "clone"], "action": "SCMP_ACT_ALLOW"},
            {"names": ["unshare"], "action": "SCMP_ACT_ALLOW", "args": [{"index": 0}]}]},
    },
}


def out():
    return transform.apply(copy.deepcopy(BASE), CTX)


def test_input_is_not_modified():
    spec = copy.deepcopy(BASE)
    transform.apply(spec, CTX)
    assert spec == BASE


def test_user_and_cgroup_namespaces_with_the_allocated_range():
    o = out()
    types = [n["type"] for n in o["linux"]["namespaces"]]
    assert types[-2:] == ["user", "cgroup"]
    assert o["linux"]["uidMappings"] == [{"containerID": 0, "hostID": 1 << 24, "size": 65536}]
    assert o["linux"]["gidMappings"] == [{"containerID": 0, "hostID": (1 << 24) + 7, "size": 65536}]
    assert o["linux"]["sysctl"]["net.ipv4.ping_group_range"] == "0 65535"


def test_full_caps_for_root_the_specs_own_for_others():
    o = out()
    assert o["process"]["capabilities"]["effective"] == caps.NAMES
    assert "apparmorProfile" not in o["process"]
    spec = copy.deepcopy(BASE)
    spec["process"]["user"]["uid"] = 1000
    o = transform.apply(spec, CTX._replace(cap_last_cap=37))
    assert o["process"]["capabilities"] == BASE["process"]["capabilities"]  # exactly as runc


def test_honor_caps_keeps_roots_spec_capabilities():
    spec = copy.deepcopy(BASE)
    assert transform.apply(spec, CTX._replace(honor_caps=True))["process"]["capabilities"] == \
        BASE["process"]["capabilities"]
    assert caps.honored({"annotations": {caps.HONOR_ANNOTATION: "true"}}, None)
    assert caps.honored({}, "1") and not caps.honored({}, None) and not caps.honored({}, "false")
    assert caps.honored({"annotations": {caps.HONOR_ANNOTATION: "false"}}, "true") is False


def test_mounts_for_a_systemd_container():
    o = out()
    by_dest = {m["destination"]: m for m in o["mounts"]}
    assert "ro" not in by_dest["/sys"]["options"] and "ro" not in by_dest["/sys/fs/cgroup"]["options"]
    assert "/sys/fs/cgroup/memory" not in by_dest
    assert by_dest["/run"]["type"] == "tmpfs" and by_dest["/run/lock"]["type"] == "tmpfs"
    assert by_dest["/var/lib/docker"] == {"destination": "/var/lib/docker", "type": "bind",
                                          "source": "/var/lib/sysbox/docker/c", "options": ["rbind", "rprivate"]}
    assert by_dest["/run/secrets"]["source"] == "/b/secrets"  # relative to the original bundle
    dests = [m["destination"] for m in o["mounts"]]
    assert dests.index("/run") < dests.index("/run/secrets") and dests.index("/run") < dests.index("/run/lock")


def test_spec_mount_wins_over_special_dir():
    spec = copy.deepcopy(BASE)
    spec["mounts"].append({"destination": "/var/lib/docker", "type": "bind", "source": "/mine", "options": ["bind"]})
    o = transform.apply(spec, CTX)
    assert [m["source"] for m in o["mounts"] if m["destination"] == "/var/lib/docker"] == ["/mine"]


def test_readonly_paths_and_masks():
    o = out()
    assert o["linux"]["readonlyPaths"] == ["/proc/bus"]
    assert o["linux"]["maskedPaths"] == ["/proc/kcore"]


def test_seccomp_allows_what_system_software_needs():
    rules = out()["linux"]["seccomp"]["syscalls"]
    assert rules[0] == {"names": ["read"], "action": "SCMP_ACT_ALLOW"}
    assert all("unshare" not in r["names"] for r in rules[:-1])  # the conditional rule is gone
    assert set(rules[-1]["names"]) == seccomp.SYSCONT_SYSCALLS and rules[-1]["action"] == "SCMP_ACT_ALLOW"


@pytest.mark.parametrize("maps, expect", [
    ([{"containerID": 0, "hostID": 200000, "size": 65536}], {"uid": 200000, "gid": 200000, "size": 65536}),
    ([{"containerID": 0, "hostID": 200000, "size": 1000}, {"containerID": 1000, "hostID": 201000, "size": 64536}],
     {"uid": 200000, "gid": 200000, "size": 65536}),
])
def test_requested_mappings_merged(maps, expect):
    spec = copy.deepcopy(BASE)
    spec["linux"]["uidMappings"] = maps
    spec["linux"]["gidMappings"] = maps
    assert namespaces.requested_mappings(spec) == expect


@pytest.mark.parametrize("maps, expect", [
    ([{"containerID": 1, "hostID": 200000, "size": 65536}], "containerID: must be 0"),
    ([{"containerID": 0, "hostID": 200000, "size": 10}, {"containerID": 20, "hostID": 200020, "size": 65536}],
     "one contiguous range"),
])
def test_requested_mappings_refused(maps, expect):
    spec = copy.deepcopy(BASE)
    spec["linux"]["uidMappings"] = maps
    spec["linux"]["gidMappings"] = [{"containerID": 0, "hostID": 200000, "size": 65536}]
    with pytest.raises(TransformError, match=expect):
        namespaces.requested_mappings(spec)


def test_missing_pid_namespace_refused():
    spec = copy.deepcopy(BASE)
    spec["linux"]["namespaces"] = [n for n in spec["linux"]["namespaces"] if n["type"] != "pid"]
    with pytest.raises(TransformError, match=r"no pid namespace; sharing the host's \(--pid=host\)"):
        transform.check(spec)


def test_oom_score_adj_raised_to_the_floor_only():
    from sysbox.runc.transform import privileges

    s = {"process": {"oomScoreAdj": -998}}
    assert privileges.apply(s, CTX._replace(oom_floor=0))["process"]["oomScoreAdj"] == 0
    s = {"process": {"oomScoreAdj": 500}}
    assert privileges.apply(s, CTX._replace(oom_floor=0))["process"]["oomScoreAdj"] == 500
    s = {"process": {"oomScoreAdj": -998}}
    assert privileges.apply(s, CTX)["process"]["oomScoreAdj"] == -998  # floor None: the host may lower it


def _rules_for(sec: dict, name: str) -> list[dict]:
    return [r for r in sec["syscalls"] if name in r["names"]]


def test_mode_calls_are_trapped_only_with_setuid_bits_under_a_denying_default():
    from sysbox.runc.transform import seccomp

    spec = {"linux": {"seccomp": {"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [
        {"names": ["chmod", "openat", "read", "setxattr"], "action": "SCMP_ACT_ALLOW"}]}}}
    sec = seccomp.apply(spec, "/run/trap.sock")["linux"]["seccomp"]
    chmod = _rules_for(sec, "chmod")
    # no catch-all rule is left for it (a catch-all ALLOW would win over the NOTIFY rules)
    assert all(r.get("args") for r in chmod)
    allow = [r for r in chmod if r["action"] == "SCMP_ACT_ALLOW"]
    assert allow == [{"names": ["chmod"], "action": "SCMP_ACT_ALLOW",
                      "args": [{"index": 1, "value": 0o6000, "valueTwo": 0, "op": "SCMP_CMP_MASKED_EQ"}]}]
    notify = sorted(r["args"][0]["value"] for r in chmod if r["action"] == "SCMP_ACT_NOTIFY")
    assert notify == [0o2000, 0o4000]
    openat = [r for r in _rules_for(sec, "openat") if r["action"] == "SCMP_ACT_NOTIFY"]
    assert all({a["index"] for a in r["args"]} == {2, 3} for r in openat)  # O_CREAT and the mode
    assert any(r["action"] == "SCMP_ACT_NOTIFY" and not r.get("args") for r in _rules_for(sec, "setxattr"))
    assert any(r["action"] == "SCMP_ACT_ALLOW" for r in _rules_for(sec, "read"))
    # a call the profile denied (fchmod is not allowed here) stays denied: nothing traps it open
    assert _rules_for(sec, "fchmod") == []
    assert sec["listenerPath"] == "/run/trap.sock"


def test_mode_calls_under_an_allowing_default_get_only_notify_rules():
    from sysbox.runc.transform import seccomp

    sec = seccomp.apply({"linux": {}}, "/run/trap.sock")["linux"]["seccomp"]
    assert sec["defaultAction"] == "SCMP_ACT_ALLOW"
    assert {r["action"] for r in _rules_for(sec, "fchmodat")} == {"SCMP_ACT_NOTIFY"}
    assert {n for r in sec["syscalls"] if not r.get("args") for n in r["names"]} >= {
        "mount", "umount2", "open_tree", "move_mount", "mount_setattr", "fsopen", "fsetxattr"}


def test_without_sysbox_fs_nothing_is_trapped():
    from sysbox.runc.transform import seccomp

    assert seccomp.apply({"linux": {}}, None) == {"linux": {}}


def test_hooks_started_on_the_host_go_through_the_state_wrapper():
    from sysbox.runc.transform import hooks

    spec = {"hooks": {"prestart": [{"path": "/bin/h", "args": ["h", "-x"], "timeout": 3}],
                      "poststop": [{"path": "/bin/p"}],
                      "startContainer": [{"path": "/in/container"}]}}
    out = hooks.apply(spec, "/the/bundle", "/our/copy", python="/py", source="CODE")
    assert out["hooks"]["prestart"] == [{"path": "/py", "args": ["/py", "-I", "-S", "-c", "CODE", "/our/copy",
                                                                 '"/the/bundle"', "/bin/h", "h", "-x"], "timeout": 3}]
    assert out["hooks"]["poststop"][0]["args"][-2:] == ["/bin/p", "/bin/p"]  # no args: argv is [path], as runc
    assert out["hooks"]["startContainer"] == [{"path": "/in/container"}]  # resolved inside: not wrapped
    assert hooks.apply({}, "/b") == {}


@pytest.mark.parametrize("size", [10, 100_000, 2_000_000])  # 2 MB: over pipe-max-size, a writer child
@pytest.mark.parametrize("compact", [True, False])  # runc's own shape (bytes replaced), and any other (parsed)
@pytest.mark.parametrize("caller", ["/caller", '/odd "dir"\\ \u00e9'])
def test_the_state_wrapper_sets_the_bundle_and_execs_the_hook(size, compact, caller):
    import subprocess
    import sys

    from sysbox.runc.transform import hooks

    state = {"ociVersion": "1.0.2", "id": "c", "bundle": "/copy", "annotations": {"a": "x" * size, "b": '"bundle":"/copy"'}}
    text = json.dumps(state, separators=(",", ":") if compact else None)
    out = subprocess.run([sys.executable, "-I", "-S", "-c", hooks.wrapper_source(), "/copy", json.dumps(caller),
                          "/bin/sh", "sh", "-c", "cat; exit 7"], input=text.encode(), stdout=subprocess.PIPE, timeout=30)
    assert out.returncode == 7  # the hook's own status: the wrapper became the hook
    assert json.loads(out.stdout) == {**state, "bundle": caller}
    if compact:  # byte for byte what runc wrote, but the bundle
        assert out.stdout == text.replace('"bundle":"/copy"', '"bundle":' + json.dumps(caller), 1).encode()
