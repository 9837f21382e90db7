"""Container networking through the standard CNI plugins, driven as the CNI spec says.

The network is one conflist - bridge (host-local IPAM) then portmap - plus the loopback
plugin for `lo`.  ADD runs the chain in order, each plugin receiving the previous result;
DEL runs it in reverse with the result ADD returned (kept in the container's record).  The
namespace is the container's own, pinned by a bind mount under the run root; what the CLI
asks the kernel itself (the address it reports) goes through sysbox/linux/netaddr.
"""

from __future__ import annotations

import errno
import json
import os
import subprocess
from typing import Any

from sysbox.errors import SysboxError

CNI_PATH = "/usr/lib/cni:/opt/cni/bin"
CNI_VERSION = "1.0.0"


class Network:
    def __init__(self, data_dir: str, bridge: str = "sysbox0", subnet: str = "10.89.0.0/24") -> None:
        self.data_dir, self.bridge, self.subnet = data_dir, bridge, subnet

    def conflist(self) -> dict[str, Any]:
        return {"cniVersion": CNI_VERSION, "name": f"sysbox-{self.bridge}", "plugins": [
            {"type": "bridge", "bridge": self.bridge, "isGateway": True, "ipMasq": True, "hairpinMode": True,
             "ipam": {"type": "host-local", "ranges": [[{"subnet": self.subnet}]], "routes": [{"dst": "0.0.0.0/0"}],
                      "dataDir": os.path.join(self.data_dir, "networks")}},
            {"type": "portmap", "capabilities": {"portMappings": True}, "snat": True},
        ]}

    def _exec(self, plugin: dict[str, Any], command: str, cid: str, netns: str, ifname: str,
              runtime: dict[str, Any], prev: dict[str, Any] | None, name: str) -> dict[str, Any]:
        conf = {"cniVersion": CNI_VERSION, "name": name, **plugin}
        caps = plugin.get("capabilities") or {}
        rc = {k: v for k, v in runtime.items() if caps.get(k)}
        if rc:
            conf["runtimeConfig"] = rc
        conf.pop("capabilities", None)
        if prev is not None:
            conf["prevResult"] = prev
        env = {**os.environ, "CNI_COMMAND": command, "CNI_CONTAINERID": cid, "CNI_NETNS": netns,
               "CNI_IFNAME": ifname, "CNI_PATH": CNI_PATH, "CNI_ARGS": ""}
        binary = next((os.path.join(d, plugin["type"]) for d in CNI_PATH.split(":")
                       if os.path.exists(os.path.join(d, plugin["type"]))), None)
        if binary is None:
            raise SysboxError(f"CNI plugin {plugin['type']} not found in {CNI_PATH} "
                              "(apt-get install containernetworking-plugins)")
        out = subprocess.run([binary], input=json.dumps(conf), env=env, capture_output=True, text=True, timeout=60,
                             check=False)
        if out.returncode != 0:
            try:
                err = json.loads(out.stdout)
                msg = err.get("msg", "") + (f": {err['details']}" if err.get("details") else "")
            except ValueError:
                msg = (out.stderr or out.stdout).strip()
            raise SysboxError(f"CNI {plugin['type']} {command}: {msg or f'exit {out.returncode}'}")
        return json.loads(out.stdout) if out.stdout.strip() else {}

    def add(self, cid: str, netns: str, ports: list[dict[str, Any]]) -> dict[str, Any]:
        """Attach the namespace; returns the result to keep for delete()."""
        self._exec({"type": "loopback"}, "ADD", cid, netns, "lo", {}, None, "lo")
        result: dict[str, Any] | None = None
        conf = self.conflist()
        done = []
        try:
            for plugin in conf["plugins"]:
                result = self._exec(plugin, "ADD", cid, netns, "eth0", {"portMappings": ports}, result, conf["name"])
                done.append(plugin)
        except BaseException:
            self._del_chain(done, cid, netns, ports, result, conf["name"])
            raise
        return result or {}

    def _del_chain(self, plugins: list[dict[str, Any]], cid: str, netns: str, ports: list[dict[str, Any]],
                   result: dict[str, Any] | None, name: str) -> list[str]:
        errors = []
        for plugin in reversed(plugins):
            try:
                self._exec(plugin, "DEL", cid, netns, "eth0", {"portMappings": ports}, result, name)
            except SysboxError as e:
                errors.append(str(e))
        return errors

    def delete(self, cid: str, netns: str, ports: list[dict[str, Any]], result: dict[str, Any] | None) -> None:
        """Detach; tolerant of a namespace already gone (DEL must succeed then, per the spec)."""
        conf = self.conflist()
        errors = self._del_chain(conf["plugins"], cid, netns, ports, result, conf["name"])
        if errors:
            raise SysboxError(errors[0])


def ip_of(result: dict[str, Any]) -> str | None:
    for ip in result.get("ips", []):
        if "." in ip.get("address", ""):
            return ip["address"].split("/")[0]
    return None


def pin_netns(pid: int, path: str) -> str:
    """Keep the container's network namespace reachable at `path` (a bind mount, as `ip netns`
    does), so CNI can detach it even after the container's processes are gone."""
    from sysbox.linux import syscalls as sc

    os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
    open(path, "a").close()
    try:
        sc.mount(f"/proc/{pid}/ns/net", path, "", 4096)  # MS_BIND
    except OSError:
        os.unlink(path)
        raise
    return path


def unpin_netns(path: str) -> None:
    from sysbox.linux import syscalls as sc

    try:
        sc.umount2(path, sc.MNT_DETACH)
    except OSError:
        pass
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


def address(netns_path: str, ifname: str = "eth0") -> str | None:
    """The interface's IPv4 address inside the network namespace, asked of the kernel."""
    from sysbox.linux.netaddr import ipv4_of

    return ipv4_of(netns_path, ifname)


def parse_port(spec: str) -> dict[str, Any]:
    """-p [HOSTIP:]HOSTPORT:CTRPORT[/tcp|udp] as CNI portMappings want it."""
    proto = "tcp"
    if "/" in spec:
        spec, proto = spec.rsplit("/", 1)
    parts = spec.split(":")
    try:
        if len(parts) == 2:
            host_ip, host, ctr = "", int(parts[0]), int(parts[1])
        elif len(parts) == 3:
            host_ip, host, ctr = parts[0], int(parts[1]), int(parts[2])
        else:
            raise ValueError
    except ValueError:
        raise SysboxError(f"-p {spec}: expected [HOSTIP:]HOSTPORT:CONTAINERPORT[/tcp|udp]") from None
    if proto not in ("tcp", "udp") or not (0 < host < 65536 and 0 < ctr < 65536):
        raise SysboxError(f"-p {spec}/{proto}: ports 1-65535, protocol tcp or udp")
    m: dict[str, Any] = {"hostPort": host, "containerPort": ctr, "protocol": proto}
    if host_ip:
        m["hostIP"] = host_ip
    return m


def _overlaps(a: dict[str, Any], b: dict[str, Any]) -> bool:
    return (a["hostPort"] == b["hostPort"] and a["protocol"] == b["protocol"]
            and (not a.get("hostIP") or not b.get("hostIP") or a["hostIP"] == b["hostIP"]))


def check_ports_free(wanted: list[dict[str, Any]], taken: dict[str, list[dict[str, Any]]]) -> None:
    """Refuse a host port another VM publishes (its DNAT rule would silently win or lose) or a
    process on this host listens on (portmap would steal its traffic)."""
    import socket

    for i, m in enumerate(wanted):
        label = f"{m.get('hostIP', '') + ':' if m.get('hostIP') else ''}{m['hostPort']}/{m['protocol']}"
        if any(_overlaps(m, o) for o in wanted[:i]):
            raise SysboxError(f"-p {label}: published twice")
        for name, ports in taken.items():
            if any(_overlaps(m, o) for o in ports):
                raise SysboxError(f"-p {label}: port in use by container {name}")
        kind = socket.SOCK_STREAM if m["protocol"] == "tcp" else socket.SOCK_DGRAM
        with socket.socket(socket.AF_INET, kind) as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # TIME_WAIT is not "in use"
            try:
                s.bind((m.get("hostIP", ""), m["hostPort"]))
            except OSError as e:
                if e.errno == errno.EADDRINUSE:
                    raise SysboxError(f"-p {label}: port in use on this host") from None
                raise SysboxError(f"-p {label}: cannot publish there ({e.strerror})") from None
