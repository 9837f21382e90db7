"""A kubectl port-forward stand-in: one HTTP request through the URL a CRI PortForward call
returned (containerd's streaming server, remotecommand port-forward over WebSocket).

Usage: python ws_portforward.py URL PORT   (run inside containerd's network namespace)
Prints what the pod's server answered to `GET /`.
"""

from __future__ import annotations

import sys

import websocket


def main() -> int:
    url, port = sys.argv[1].replace("http://", "ws://", 1), int(sys.argv[2])
    ws = websocket.create_connection(f"{url}?ports={port}", subprotocols=["v4.channel.k8s.io"], timeout=30)
    request = f"GET / HTTP/1.0\r\nHost: localhost:{port}\r\n\r\n".encode()
    got, sent, answer = set(), False, b""
    while True:
        try:
            frame = ws.recv()
        except (websocket.WebSocketConnectionClosedException, websocket.WebSocketTimeoutException):
            break
        if not frame:
            break
        data = frame if isinstance(frame, bytes) else frame.encode()
        channel, body = data[0], data[1:]
        if channel not in got:  # each channel opens with the port number, 2 bytes
            got.add(channel)
            body = body[2:]
        if channel == 0:
            answer += body
        elif channel == 1 and body:
            print(body.decode(errors="replace"), file=sys.stderr)
            return 1
        if not sent and {0, 1} <= got:
            ws.send_binary(b"\x00" + request)
            sent = True
        head, sep, body_so_far = answer.partition(b"\r\n\r\n")
        if sep:
            length = next((int(line.split(b":")[1]) for line in head.split(b"\r\n")
                           if line.lower().startswith(b"content-length:")), None)
            if length is not None and len(body_so_far) >= length:
                break
    sys.stdout.write(answer.decode(errors="replace"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
