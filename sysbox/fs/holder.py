"""sysbox-fs's fd holder: keeps every container's FUSE connection and seccomp listener open
while sysbox-fs itself dies, restarts or is replaced by a newer build.

A FUSE connection lives as long as some process holds its /dev/fuse fd, and a seccomp
listener as long as some process holds it: this process is that holder.  It does nothing
else, so there is little in it to fail:
- it owns the seccomp socket runc hands listener fds to (linux.seccomp.listenerPath), so
  `runc exec` works while sysbox-fs is down; the fds wait here for the next sysbox-fs;
- sysbox-fs connects to its control socket, gets every fd it keeps ("have"), and sends it
  the fds of new FUSE connections ("keep") and the names of those that ended ("drop");
- it receives the seccomp notifications itself and passes them on ("notif"), keeping each
  until sysbox-fs says it answered it ("answered"): the kernel sends a notification only
  once, so one received by a sysbox-fs that was then killed would leave its caller waiting
  forever.  A new sysbox-fs gets every notification not answered yet, with the decision
  the dead one had reached ("decided"), so an action already done is not done twice;
- one sysbox-fs at a time: a new connection replaces the previous one (which is dead, or
  being replaced).
Messages are JSON, one per SOCK_SEQPACKET datagram, with at most one fd (SCM_RIGHTS).
It exits on SIGTERM or a "quit" from sysbox-fs, closing everything it keeps.
"""

from __future__ import annotations

import argparse
import array
import errno
import json
import logging
import os
import select
import signal
import socket
import sys
from typing import Any

log = logging.getLogger("sysbox-fs-holder")
MAX_MSG = 65536
PROTOCOL = 1  # "have" and "keep" messages keep their meaning across sysbox-fs versions


def send(sock: socket.socket, msg: dict[str, Any], fd: int | None = None) -> None:
    """Blocking for at most 2 s, whatever the socket's mode (the peer reads promptly)."""
    anc = [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", [fd]))] if fd is not None else []
    was = sock.gettimeout()
    sock.settimeout(2)
    try:
        sock.sendmsg([json.dumps(msg).encode()], anc)
    finally:
        sock.settimeout(was)


def recv(sock: socket.socket) -> tuple[dict[str, Any] | None, int | None]:
    """One message and its fd; (None, None) at the end of the connection."""
    fds = array.array("i")
    data, anc, _flags, _addr = sock.recvmsg(MAX_MSG, socket.CMSG_SPACE(4 * fds.itemsize))
    for level, kind, cdata in anc:
        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
            fds.frombytes(cdata[:len(cdata) - len(cdata) % fds.itemsize])
    for extra in fds[1:]:
        os.close(extra)
    fd = fds[0] if fds else None
    if not data:
        if fd is not None:
            os.close(fd)
        return None, None
    try:
        msg = json.loads(data)
    except ValueError:
        msg = {}
    return (msg if isinstance(msg, dict) else {}), fd


def _listen(path: str, kind: int) -> socket.socket:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
    s = socket.socket(socket.AF_UNIX, kind | socket.SOCK_CLOEXEC)
    old = os.umask(0o177)  # 0600: host root only
    try:
        s.bind(path)
    finally:
        os.umask(old)
    s.listen(64)
    return s


class Holder:
    def __init__(self, control: str, seccomp: str) -> None:
        self.kept: dict[str, tuple[int, dict[str, Any]]] = {}
        # listener name -> notification id -> [id, pid, nr, arch, args, decided result or None]
        self.pending: dict[str, dict[int, list[Any]]] = {}
        self.poller = select.poll()
        self.listener_fds: dict[int, str] = {}
        self.watched = -1  # the daemon connection's fd in the poller, by number
        self.control = _listen(control, socket.SOCK_SEQPACKET)
        self.seccomp = _listen(seccomp, socket.SOCK_STREAM)
        self.daemon: socket.socket | None = None
        self.next_listener = 0
        self.paths = (control, seccomp)

    def keep(self, name: str, fd: int, meta: dict[str, Any]) -> None:
        self.drop(name)
        self.kept[name] = (fd, meta)

    def drop(self, name: str) -> None:
        old = self.kept.pop(name, None)
        if old is not None:
            if self.listener_fds.pop(old[0], None) is not None:
                self.poller.unregister(old[0])
            self.pending.pop(name, None)
            os.close(old[0])

    def _watch_listener(self, name: str) -> None:
        fd = self.kept[name][0]
        self.listener_fds[fd] = name
        self.pending.setdefault(name, {})
        self.poller.register(fd, select.POLLIN)

    def _notify(self, fd: int, events: int) -> None:
        """A listener is readable: receive the notification and pass it on; or every process
        using it is gone (POLLHUP): drop it."""
        from sysbox.linux import seccomp

        name = self.listener_fds[fd]
        if events & (select.POLLHUP | select.POLLERR) and not events & select.POLLIN:
            self.drop(name)
            self._send_daemon({"op": "gone", "name": name})
            return
        try:
            n = seccomp.recv(fd)
        except OSError as e:
            if e.errno not in (errno.ENOENT, errno.EINTR):  # not a listener: it would poll readable forever
                log.warning("holder: %s is no seccomp listener (%s): dropped", name, e.strerror)
                self.drop(name)
                self._send_daemon({"op": "gone", "name": name})
            return  # ENOENT: the caller died meanwhile
        entry = [n.id, n.pid, n.nr, n.arch, list(n.args), None]
        self.pending[name][n.id] = entry
        self._send_daemon({"op": "notif", "name": name, "n": entry})

    def _send_daemon(self, msg: dict[str, Any]) -> None:
        if self.daemon is None:
            return
        try:
            send(self.daemon, msg)
        except OSError:
            self._lost_daemon()

    def _to_daemon(self, name: str) -> None:
        if self.daemon is None:
            return
        fd, meta = self.kept[name]
        try:
            send(self.daemon, {"op": "have", "name": name, "meta": meta}, fd)
        except OSError:
            self._lost_daemon()

    def _lost_daemon(self) -> None:
        if self.daemon is not None:
            if self.watched >= 0:
                try:
                    self.poller.unregister(self.watched)
                except (KeyError, ValueError):
                    pass
                self.watched = -1
            self.daemon.close()
            self.daemon = None

    def _accept_daemon(self) -> None:
        conn, _ = self.control.accept()
        self._drain_daemon()  # what the previous one sent before it went counts (a last "keep")
        self._lost_daemon()  # the previous one is dead or being replaced
        conn.setblocking(False)
        self.daemon = conn
        for name in list(self.kept):
            self._to_daemon(name)
        self._send_daemon({"op": "ready", "protocol": PROTOCOL, "pid": os.getpid()})
        for name, entries in self.pending.items():  # those the previous one did not answer
            for entry in entries.values():
                self._send_daemon({"op": "notif", "name": name, "n": entry, "replay": True})

    def _drain_daemon(self) -> None:
        for _ in range(10000):  # bounded: a live daemon could keep sending
            if self.daemon is None:
                return
            try:
                msg, fd = recv(self.daemon)
            except BlockingIOError:
                return
            except OSError:
                return
            if msg is None:
                return
            self._handle(msg, fd)

    def _accept_listener(self) -> None:
        """runc's handover: its state as JSON and the listener fd, then it closes."""
        conn, _ = self.seccomp.accept()
        with conn:
            conn.settimeout(5)
            try:
                msg, fd = recv(conn)
            except OSError:
                return
        if fd is None:
            return
        self.next_listener += 1
        name = f"seccomp/{os.getpid()}-{self.next_listener}"
        self.keep(name, fd, {"state": msg or {}})
        self._to_daemon(name)
        self._watch_listener(name)

    def _from_daemon(self) -> bool:
        """False to stop."""
        assert self.daemon is not None
        try:
            msg, fd = recv(self.daemon)
        except BlockingIOError:
            return True
        except OSError:
            msg, fd = None, None
        if msg is None:
            self._lost_daemon()
            return True
        return self._handle(msg, fd)

    def _handle(self, msg: dict[str, Any], fd: int | None) -> bool:
        """One message from sysbox-fs; False to stop."""
        op, name = msg.get("op"), str(msg.get("name", ""))
        if op == "keep" and fd is not None and name:
            self.keep(name, fd, msg.get("meta") or {})
            if name.startswith("seccomp/"):
                self._watch_listener(name)  # a new holder, given a listener by sysbox-fs
        elif fd is not None:
            os.close(fd)
        if op == "drop":
            self.drop(name)
        elif op in ("decided", "answered"):
            entries = self.pending.get(name, {})
            nid = msg.get("id")
            if isinstance(nid, int) and op == "answered":
                entries.pop(nid, None)
            elif isinstance(nid, int) and nid in entries:
                entries[nid][5] = msg.get("result")
        return op != "quit"

    def run(self) -> None:
        poller = self.poller
        poller.register(self.control, select.POLLIN)
        poller.register(self.seccomp, select.POLLIN)
        while True:
            if self.daemon is not None and self.watched < 0:
                self.watched = self.daemon.fileno()
                poller.register(self.watched, select.POLLIN)
            for fd, ev in poller.poll():
                try:
                    if fd in self.listener_fds:
                        self._notify(fd, ev)
                    elif fd == self.control.fileno():
                        self._accept_daemon()
                    elif fd == self.seccomp.fileno():
                        self._accept_listener()
                    elif self.daemon is not None and fd == self.daemon.fileno() and not self._from_daemon():
                        return
                except OSError as e:  # EMFILE and the like: this one request, never the holder
                    log.warning("holder: %s", e)

    def close(self) -> None:
        for fd, _meta in self.kept.values():
            os.close(fd)
        self.kept.clear()
        for path in self.paths:
            try:
                os.unlink(path)
            except FileNotFoundError:
                pass


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="sysbox-fs-holder")
    p.add_argument("--socket", required=True, help="control socket for sysbox-fs")
    p.add_argument("--seccomp-socket", required=True, help="where runc hands over seccomp listener fds")
    p.add_argument("--pid-file", help="written once listening (the holder is stopped by this pid)")
    p.add_argument("--log")
    args = p.parse_args(argv)
    logging.basicConfig(filename=args.log, level=logging.INFO, format="%(asctime)s %(levelname)s holder: %(message)s")
    holder = Holder(args.socket, args.seccomp_socket)

    def stop(_sig: int, _frame: Any) -> None:
        raise SystemExit(0)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGPIPE, signal.SIG_IGN)
    if args.pid_file:
        with open(os.open(args.pid_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600), "w") as f:
            f.write(f"{os.getpid()}\n")
    print("ready", flush=True)
    try:
        holder.run()
    finally:
        holder.close()
        if args.pid_file:
            try:
                os.unlink(args.pid_file)
            except FileNotFoundError:
                pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
