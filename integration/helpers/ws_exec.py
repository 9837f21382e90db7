"""A kubectl-exec stand-in: speak the Kubernetes remotecommand protocol over WebSocket to the
URL a CRI Exec call returned (containerd's streaming server), as the kubelet's client would.

Usage: python ws_exec.py URL [STDIN-TEXT]   (run inside containerd's network namespace)
Prints JSON {"stdout", "stderr", "status"}: channel 1, channel 2, and the v4 status message.
"""

from __future__ import annotations

import json
import sys

import websocket

STDIN, STDOUT, STDERR, ERROR = 0, 1, 2, 3


def main() -> int:
    url = sys.argv[1].replace("http://", "ws://", 1)
    ws = websocket.create_connection(url, subprotocols=["v4.channel.k8s.io"], timeout=30)
    if len(sys.argv) > 2:
        ws.send_binary(bytes([STDIN]) + sys.argv[2].encode())
    out = {STDOUT: b"", STDERR: b"", ERROR: b""}
    while True:
        try:
            frame = ws.recv()
        except websocket.WebSocketConnectionClosedException:
            break
        if not frame:
            break
        data = frame if isinstance(frame, bytes) else frame.encode()
        if data[0] in out:
            out[data[0]] += data[1:]
    print(json.dumps({"stdout": out[STDOUT].decode(), "stderr": out[STDERR].decode(),
                      "status": json.loads(out[ERROR] or b"{}")}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
