"""The Kubernetes path without a kubelet: containerd's CRI plugin, with the `sysbox-runc` runtime
handler that `sysbox install containerd` declares, driven over the CRI gRPC API as the kubelet
drives it (integration/cri.py).  A pod sandbox and a container in it run as system containers;
the pod network comes from the CNI bridge plugin, inside containerd's own network namespace.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import tarfile
import time
import uuid

import pytest

from integration.conftest import CACHE, VENV_BIN, mounts, wait_for
from integration.containerd import Containerd
from sysbox import images

grpc = pytest.importorskip("grpc", reason="grpcio is a test dependency (pip install -e '.[test]')")
from integration.cri import CONTAINER, CRI, POD  # noqa: E402

PAUSE = "docker.io/local/pause:latest"
BUSYBOX = "docker.io/local/busybox:latest"


def pause_archive(busybox_archive: str, out: str) -> str:
    """The busybox image with a command that waits forever: the pod sandbox's pause process."""
    with tarfile.open(busybox_archive) as src:
        manifest = json.load(src.extractfile("manifest.json"))
        old = manifest[0]["Config"]
        config = json.load(src.extractfile(old))
        config["config"] = {**config.get("config", {}), "Cmd": ["sleep", "2147483647"]}
        blob = json.dumps(config).encode()
        name = hashlib.sha256(blob).hexdigest() + ".json"
        manifest[0].update(Config=name, RepoTags=["local/pause:latest"])
        with tarfile.open(out, "w") as dst:
            for member in src.getmembers():
                if member.name in ("manifest.json", old):
                    continue
                dst.addfile(member, src.extractfile(member) if member.isfile() else None)
            for fname, data in ((name, blob), ("manifest.json", json.dumps(manifest).encode())):
                info = tarfile.TarInfo(fname)
                info.size = len(data)
                dst.addfile(info, io.BytesIO(data))
    return out


@pytest.fixture(scope="module")
def cri_containerd(session_mgr, session_fs, sysbox_state, tmp_path_factory):
    base = str(tmp_path_factory.mktemp("cri"))
    conf_dir = os.path.join(base, "cni-conf")
    os.makedirs(conf_dir)
    with open(os.path.join(conf_dir, "10-sysbox-test.conflist"), "w") as f:
        json.dump({"cniVersion": "1.0.0", "name": "sysbox-cri-test", "plugins": [
            {"type": "bridge", "bridge": "sbxcri0", "isGateway": True, "ipMasq": True,
             "ipam": {"type": "host-local", "ranges": [[{"subnet": "10.78.0.0/24"}]],
                      "dataDir": os.path.join(base, "ipam")}},
            {"type": "portmap", "capabilities": {"portMappings": True}}]}, f)
    extra = (f'[plugins."io.containerd.grpc.v1.cri"]\n  sandbox_image = "{PAUSE}"\n'
             f'[plugins."io.containerd.grpc.v1.cri".cni]\n  bin_dir = "/usr/lib/cni"\n  conf_dir = "{conf_dir}"\n')
    c = Containerd(base, VENV_BIN, {"SYSBOX_MGR_SOCKET": session_mgr.socket, "SYSBOX_FS_SOCKET": session_fs.socket,
                                    "SYSBOX_RUNC_STATE_DIR": sysbox_state}, cri=True, extra=extra)
    try:  # stop() also undoes a start that failed half-way
        c.start()
        busybox = images.build("busybox", cache=CACHE)["docker_archive"]
        for archive in (busybox, pause_archive(busybox, os.path.join(base, "pause.tar"))):
            out = c.ctr("images", "import", archive, namespace="k8s.io")
            assert out.returncode == 0, out.stderr
        client = CRI(c.sock)
        yield c, client
        client.close()
    finally:
        c.stop()


def sandbox_config(cri: CRI, name: str, log_dir: str, sysctls: dict[str, str] | None = None):
    return cri.msg("PodSandboxConfig",
                   metadata=cri.msg("PodSandboxMetadata", name=name, uid=uuid.uuid4().hex, namespace="default"),
                   hostname=name, log_directory=log_dir,
                   linux=cri.msg("LinuxPodSandboxConfig", security_context=cri.msg(
                       "LinuxSandboxSecurityContext",
                       namespace_options=cri.msg("NamespaceOption", network=POD, pid=CONTAINER, ipc=POD)),
                       sysctls=[cri.msg("KeyValue", key=k, value=v) for k, v in (sysctls or {}).items()]))


def test_cri_version_names_containerd(cri_containerd):
    _, cri = cri_containerd
    v = cri.call("Version", version="v1")
    assert v.runtime_name == "containerd" and v.runtime_api_version.startswith("v1")


def test_pod_with_the_sysbox_handler_runs_system_containers(cri_containerd, session_mgr, tmp_path):
    ctd, cri = cri_containerd
    name = "pod-" + uuid.uuid4().hex[:6]
    cfg = sandbox_config(cri, name, str(tmp_path))
    sandbox = cri.call("RunPodSandbox", config=cfg, runtime_handler="sysbox-runc").pod_sandbox_id
    try:
        assert sandbox in {c["id"] for c in session_mgr.call("status")["containers"]}  # it went through us
        container = cri.call("CreateContainer", pod_sandbox_id=sandbox, sandbox_config=cfg, config=cri.msg(
            "ContainerConfig", metadata=cri.msg("ContainerMetadata", name="app"),
            image=cri.msg("ImageSpec", image=BUSYBOX), log_path="app.log",
            command=["sh", "-c", "cat /proc/self/uid_map; cat /proc/uptime; ls /sys/class/net; echo END; sleep 600"],
            # the kubelet's default (shareProcessNamespace: false): a PID namespace of its own
            linux=cri.msg("LinuxContainerConfig", security_context=cri.msg(
                "LinuxContainerSecurityContext",
                namespace_options=cri.msg("NamespaceOption", network=POD, pid=CONTAINER, ipc=POD))))).container_id
        cri.call("StartContainer", container_id=container)
        # what the container printed, from the CRI log (`<time> stdout F <line>`), as kubectl logs shows it
        log = tmp_path / "app.log"
        deadline = time.monotonic() + 30
        while not (log.exists() and "END" in log.read_text()) and time.monotonic() < deadline:
            time.sleep(0.2)
        lines = [line.split(" ", 3)[3] for line in log.read_text().splitlines() if " stdout " in line]
        inside, outside, size = lines[0].split()
        assert (inside, size) == ("0", "65536") and int(outside) >= 1 << 24
        assert float(lines[1].split()[0]) < 120  # its own uptime
        assert "eth0" in lines[2:]  # the pod's CNI interface, seen through the host-mounted sysfs
        ids = {c["id"] for c in session_mgr.call("status")["containers"]}
        assert container in ids
        cri.call("StopContainer", container_id=container, timeout=5)
        cri.call("RemoveContainer", container_id=container)
    finally:
        left = _remove_pod(cri, session_mgr, sandbox, [sandbox])
    assert sandbox not in left
    assert not [m for m in mounts() if sandbox in m or container in m]


def test_unknown_handler_is_refused_by_containerd(cri_containerd, tmp_path):
    _, cri = cri_containerd
    with pytest.raises(grpc.RpcError) as e:
        cri.call("RunPodSandbox", config=sandbox_config(cri, "nohandler", str(tmp_path)), runtime_handler="no-such")
    assert "no-such" in e.value.details()


def _container(cri: CRI, sandbox: str, cfg, name: str, command: list[str]):
    return cri.call("CreateContainer", pod_sandbox_id=sandbox, sandbox_config=cfg, config=cri.msg(
        "ContainerConfig", metadata=cri.msg("ContainerMetadata", name=name),
        image=cri.msg("ImageSpec", image=BUSYBOX), log_path=f"{name}.log", command=command,
        linux=cri.msg("LinuxContainerConfig", security_context=cri.msg(
            "LinuxContainerSecurityContext",
            namespace_options=cri.msg("NamespaceOption", network=POD, pid=CONTAINER, ipc=POD))))).container_id


def test_pod_sysctls_two_containers_and_exec_sync(cri_containerd, session_mgr, tmp_path):
    """securityContext.sysctls in a pod netns containerd made; kubectl exec (ExecSync) into
    either container of the pod; stdout, stderr and the exit code come back."""
    ctd, cri = cri_containerd
    name = "pod-" + uuid.uuid4().hex[:6]
    cfg = sandbox_config(cri, name, str(tmp_path), sysctls={"net.ipv4.ip_unprivileged_port_start": "100"})
    sandbox = cri.call("RunPodSandbox", config=cfg, runtime_handler="sysbox-runc").pod_sandbox_id
    made = [sandbox]
    try:
        pause_pid = next(c["pid"] for c in session_mgr.call("status")["containers"] if c["id"] == sandbox)
        pod_netns = os.stat(f"/proc/{pause_pid}/ns/net").st_ino
        first = _container(cri, sandbox, cfg, "one", ["sh", "-c", "mkdir -p /www && echo pod-page > /www/index.html "
                                                                  "&& exec httpd -f -p 8080 -h /www"])
        second = _container(cri, sandbox, cfg, "two", ["sleep", "600"])
        made += [first, second]
        for c in (first, second):
            cri.call("StartContainer", container_id=c)
        for c in (first, second):
            r = cri.call("ExecSync", container_id=c, timeout=30,
                         cmd=["sh", "-c", "cat /proc/sys/net/ipv4/ip_unprivileged_port_start; ls /sys/class/net; "
                                          "cat /proc/self/uid_map; echo to-stderr >&2; exit 3"])
            out = r.stdout.decode().split()
            assert r.exit_code == 3 and r.stderr.decode().strip() == "to-stderr", (r.exit_code, r.stderr)
            assert out[0] == "100" and "eth0" in out, out  # the pod's sysctl and interface
            assert out[-3] == "0" and out[-1] == "65536" and int(out[-2]) >= 1 << 24  # its own user namespace
        ids = {c["id"] for c in session_mgr.call("status")["containers"]}
        assert {sandbox, first, second} <= ids
        # kubectl exec: a streaming Exec through containerd's streaming server, without and with a tty
        plain = _stream(ctd, cri.call("Exec", container_id=first, cmd=["sh", "-c", "echo out; echo err >&2; exit 4"],
                                      stdout=True, stderr=True).url)
        assert (plain["stdout"], plain["stderr"]) == ("out\n", "err\n"), plain
        assert plain["status"]["status"] == "Failure" and "4" in json.dumps(plain["status"]["details"]), plain
        tty = _stream(ctd, cri.call("Exec", container_id=second, tty=True, stdin=True, stdout=True,
                                    cmd=["sh", "-c", "read line; echo got:$line; tty; exit 0"]).url, "hello\n")
        assert "got:hello" in tty["stdout"] and "/dev/pts/" in tty["stdout"], tty
        assert tty["status"].get("status") == "Success", tty
        # kubectl port-forward: into the pod's netns, to the first container's server
        page = _forward(ctd, cri.call("PortForward", pod_sandbox_id=sandbox, port=[8080]).url, 8080)
        assert "200 OK" in page and page.rstrip().endswith("pod-page"), page
        for c in (first, second):
            cri.call("StopContainer", container_id=c, timeout=5)
            cri.call("RemoveContainer", container_id=c)
    finally:
        left = _remove_pod(cri, session_mgr, sandbox, made)
    assert not left
    assert not [m for m in mounts() if any(i in m for i in made)]
    assert pod_netns not in _netns_files()  # containerd removed the pod's netns


def _remove_pod(cri: CRI, session_mgr, sandbox: str, ids: list[str]) -> set[str]:
    """Stop and remove the pod sandbox; the ids of `ids` the manager still holds after 20 s."""
    cri.call("StopPodSandbox", pod_sandbox_id=sandbox)
    cri.call("RemovePodSandbox", pod_sandbox_id=sandbox)

    def held() -> set[str]:
        return set(ids) & {c["id"] for c in session_mgr.call("status")["containers"]}

    wait_for(lambda: not held(), timeout=20)
    return held()


def _client(ctd, helper: str, *args: str) -> str:
    """Run a streaming client from integration/helpers in containerd's netns, where its
    streaming server listens; its stdout."""
    import subprocess
    import sys

    out = subprocess.run(["nsenter", f"--net=/run/netns/{ctd.netns}", sys.executable,
                          os.path.join(os.path.dirname(__file__), "helpers", helper), *args],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    return out.stdout


def _stream(ctd, url: str, stdin: str | None = None) -> dict:
    return json.loads(_client(ctd, "ws_exec.py", url, *([stdin] if stdin is not None else [])))


def _forward(ctd, url: str, port: int) -> str:
    return _client(ctd, "ws_portforward.py", url, str(port))


def _netns_files() -> set[int]:
    """Namespace inodes of the files under /run/netns (other tests' come and go meanwhile)."""
    out = set()
    for name in os.listdir("/run/netns") if os.path.isdir("/run/netns") else []:
        try:
            out.add(os.stat(os.path.join("/run/netns", name)).st_ino)
        except OSError:
            pass
    return out
