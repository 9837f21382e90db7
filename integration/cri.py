"""A small CRI client (runtime.v1.RuntimeService over gRPC), to drive containerd the way the
kubelet does, where no kubelet or crictl is installed.

Only the messages and fields the tests use are declared, built at run time with protobuf's
descriptor API from the field numbers of the CRI v1 API; fields a reply carries beyond these
are skipped by the parser, as protobuf always does.
"""

from __future__ import annotations

from typing import Any

import grpc
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

F = descriptor_pb2.FieldDescriptorProto
STR, BYTES, I64, I32, U32, BOOL, MSG = (F.TYPE_STRING, F.TYPE_BYTES, F.TYPE_INT64, F.TYPE_INT32, F.TYPE_UINT32,
                                        F.TYPE_BOOL, F.TYPE_MESSAGE)
REP = "repeated"

# message -> [(field, number, type[, message type][, repeated])]
MESSAGES: dict[str, list[tuple]] = {
    "VersionRequest": [("version", 1, STR)],
    "VersionResponse": [("version", 1, STR), ("runtime_name", 2, STR), ("runtime_version", 3, STR),
                        ("runtime_api_version", 4, STR)],
    "PodSandboxMetadata": [("name", 1, STR), ("uid", 2, STR), ("namespace", 3, STR), ("attempt", 4, U32)],
    "NamespaceOption": [("network", 1, I32), ("pid", 2, I32), ("ipc", 3, I32)],
    "LinuxSandboxSecurityContext": [("namespace_options", 1, MSG, "NamespaceOption")],
    "LinuxPodSandboxConfig": [("cgroup_parent", 1, STR), ("security_context", 2, MSG, "LinuxSandboxSecurityContext"),
                              ("sysctls", 3, MSG, "KeyValue", REP)],  # a map on the wire is repeated entries
    "PodSandboxConfig": [("metadata", 1, MSG, "PodSandboxMetadata"), ("hostname", 2, STR), ("log_directory", 3, STR),
                         ("linux", 8, MSG, "LinuxPodSandboxConfig")],
    "RunPodSandboxRequest": [("config", 1, MSG, "PodSandboxConfig"), ("runtime_handler", 2, STR)],
    "RunPodSandboxResponse": [("pod_sandbox_id", 1, STR)],
    "PodSandboxIdRequest": [("pod_sandbox_id", 1, STR)],
    "Empty": [],
    "ContainerMetadata": [("name", 1, STR), ("attempt", 2, U32)],
    "ImageSpec": [("image", 1, STR)],
    "KeyValue": [("key", 1, STR), ("value", 2, STR)],
    "ContainerConfig": [("metadata", 1, MSG, "ContainerMetadata"), ("image", 2, MSG, "ImageSpec"),
                        ("command", 3, STR, None, REP), ("args", 4, STR, None, REP), ("working_dir", 5, STR),
                        ("envs", 6, MSG, "KeyValue", REP), ("log_path", 11, STR),
                        ("linux", 15, MSG, "LinuxContainerConfig")],
    "LinuxContainerSecurityContext": [("namespace_options", 3, MSG, "NamespaceOption")],
    "LinuxContainerConfig": [("security_context", 2, MSG, "LinuxContainerSecurityContext")],
    "CreateContainerRequest": [("pod_sandbox_id", 1, STR), ("config", 2, MSG, "ContainerConfig"),
                               ("sandbox_config", 3, MSG, "PodSandboxConfig")],
    "CreateContainerResponse": [("container_id", 1, STR)],
    "ContainerIdRequest": [("container_id", 1, STR)],
    "StopContainerRequest": [("container_id", 1, STR), ("timeout", 2, I64)],
    "ExecSyncRequest": [("container_id", 1, STR), ("cmd", 2, STR, None, REP), ("timeout", 3, I64)],
    "ExecSyncResponse": [("stdout", 1, BYTES), ("stderr", 2, BYTES), ("exit_code", 3, I32)],
    "ExecRequest": [("container_id", 1, STR), ("cmd", 2, STR, None, REP), ("tty", 3, BOOL), ("stdin", 4, BOOL),
                    ("stdout", 5, BOOL), ("stderr", 6, BOOL)],
    "ExecResponse": [("url", 1, STR)],
    "PortForwardRequest": [("pod_sandbox_id", 1, STR), ("port", 2, I32, None, REP)],
    "PortForwardResponse": [("url", 1, STR)],
}
# rpc -> (request, response)
RPCS = {
    "Version": ("VersionRequest", "VersionResponse"),
    "RunPodSandbox": ("RunPodSandboxRequest", "RunPodSandboxResponse"),
    "StopPodSandbox": ("PodSandboxIdRequest", "Empty"),
    "RemovePodSandbox": ("PodSandboxIdRequest", "Empty"),
    "CreateContainer": ("CreateContainerRequest", "CreateContainerResponse"),
    "StartContainer": ("ContainerIdRequest", "Empty"),
    "StopContainer": ("StopContainerRequest", "Empty"),
    "RemoveContainer": ("ContainerIdRequest", "Empty"),
    "ExecSync": ("ExecSyncRequest", "ExecSyncResponse"),
    "Exec": ("ExecRequest", "ExecResponse"),
    "PortForward": ("PortForwardRequest", "PortForwardResponse"),
}
POD, CONTAINER, NODE = 0, 1, 2  # NamespaceMode


def _classes() -> dict[str, Any]:
    fd = descriptor_pb2.FileDescriptorProto(name="sysbox_cri_subset.proto", package="runtime.v1", syntax="proto3")
    for name, fields in MESSAGES.items():
        m = fd.message_type.add(name=name)
        for spec in fields:
            fname, number, ftype = spec[:3]
            ref = spec[3] if len(spec) > 3 else None
            label = F.LABEL_REPEATED if len(spec) > 4 and spec[4] == REP else F.LABEL_OPTIONAL
            f = m.field.add(name=fname, number=number, type=ftype, label=label)
            if ref:
                f.type_name = f".runtime.v1.{ref}"
    pool = descriptor_pool.DescriptorPool()
    pool.Add(fd)
    return {name: message_factory.GetMessageClass(pool.FindMessageTypeByName(f"runtime.v1.{name}"))
            for name in MESSAGES}


class CRI:
    def __init__(self, socket: str, timeout: float = 120) -> None:
        self.classes = _classes()
        self.channel = grpc.insecure_channel(f"unix://{socket}")
        self.timeout = timeout

    def call(self, rpc: str, **fields: Any) -> Any:
        req_name, resp_name = RPCS[rpc]
        req = self.classes[req_name](**fields)
        method = self.channel.unary_unary(f"/runtime.v1.RuntimeService/{rpc}",
                                          request_serializer=lambda m: m.SerializeToString(),
                                          response_deserializer=self.classes[resp_name].FromString)
        return method(req, timeout=self.timeout)

    def msg(self, _type: str, **fields: Any) -> Any:
        return self.classes[_type](**fields)

    def close(self) -> None:
        self.channel.close()
