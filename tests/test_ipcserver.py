"""The request handler both daemons share: every bad request is one error reply, never a crash;
and the server loop over a real socket pair (lines, the size cap, a closed peer)."""

import json
import socket

import pytest
import trio

from sysbox import ipc
from sysbox.ipcserver import RequestError, Service, serve_connection


class Echo(Service):
    REQUESTS = {
        "echo": {"type": "object", "required": ["op", "text"],
                 "properties": {"op": {}, "text": {"type": "string", "maxLength": 8}}},
        "boom": {"type": "object"},
        "refuse": {"type": "object"},
    }

    async def op_echo(self, req, peer):
        return {"text": req["text"], "peer": list(peer)}

    async def op_boom(self, req, peer):
        raise KeyError("no such thing")

    async def op_refuse(self, req, peer):
        raise RequestError("not here", "not-found")


def _handle(line: bytes) -> dict:
    return trio.run(Echo().handle, line, (1, 2))


@pytest.mark.parametrize("line, code, text", [
    (b"{", "bad-request", "invalid JSON"),
    (b"\xff", "bad-request", "invalid JSON"),
    (b"[" * 100_000, "bad-request", "invalid JSON"),
    (b"[1]", "bad-request", "a request is a JSON object, got list"),
    (b"{}", "bad-request", "op: required field is missing"),
    (b'{"op": "nope"}', "bad-request", "unknown op 'nope'; known: boom, echo, refuse"),
    (b'{"op": 7}', "bad-request", "unknown op '7'"),
    (b'{"op": "echo"}', "bad-request", "echo: "),
    (b'{"op": "echo", "text": "far too long"}', "bad-request", "echo: text"),
    (b'{"op": "refuse"}', "not-found", "not here"),
    (b'{"op": "boom"}', "internal", "internal error: KeyError"),
])
def test_every_bad_request_is_one_error_reply(line, code, text):
    reply = _handle(line)
    assert reply["ok"] is False and reply["code"] == code and text in reply["error"], reply


def test_a_good_request():
    assert _handle(b'{"op": "echo", "text": "hi"}') == {"ok": True, "result": {"text": "hi", "peer": [1, 2]}}


def test_the_loop_over_a_socket_pair():
    async def main() -> list[dict]:
        ours, theirs = socket.socketpair()
        stream = trio.SocketStream(trio.socket.from_stdlib_socket(theirs))
        replies = []
        async with trio.open_nursery() as nursery:
            nursery.start_soon(serve_connection, Echo(), stream)
            client = trio.SocketStream(trio.socket.from_stdlib_socket(ours))
            await client.send_all(b'{"op": "echo", "text": "a"}\n\n{"op": "nope"}\n')

            async def flood() -> None:  # no newline: over the cap, then the server hangs up
                try:
                    await client.send_all(b"x" * (ipc.MAX_MESSAGE + 10))
                except (trio.BrokenResourceError, trio.ClosedResourceError):
                    pass

            nursery.start_soon(flood)
            data = b""
            with trio.fail_after(10):
                while True:
                    chunk = await client.receive_some(65536)
                    if not chunk:
                        break
                    data += chunk
            await client.aclose()
            replies = [json.loads(line) for line in data.splitlines()]
        return replies

    replies = trio.run(main)
    assert [r["ok"] for r in replies] == [True, False, False]
    assert replies[0]["result"]["text"] == "a" and replies[2]["code"] == "too-large"
