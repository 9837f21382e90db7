"""Run one OCI hook with the caller's bundle in its state (see transform/hooks.py).

Started by runc as `python -I -S -c <this file's text> COPY BUNDLE PATH ARGV0 [ARGS...]`,
with the state on stdin: COPY is the bundle runc names (our rewritten copy), BUNDLE the
caller's, as a JSON string.  It imports nothing of sysbox and is not read from disk:
createContainer hooks start it inside the container's user namespace, which may not reach
our installation.  runc writes `"bundle":"COPY"` exactly once, so that is replaced as bytes;
only a state in another shape is parsed (json costs every hook ~10 ms: Docker runs one per
container).  The state goes to the hook through a pipe (a writer child when it exceeds what
the pipe holds), then the wrapper becomes the hook by exec, so the hook's exit status,
output and timeout are runc's to see as they would be without us.
"""

import os
import sys


def main(argv: list) -> int:
    if len(argv) < 4:
        sys.stderr.write("hookstate: usage: hookstate.py COPY BUNDLE PATH ARGV0 [ARGS...]\n")
        return 2
    copy, bundle, path, args = argv[0], argv[1], argv[2], argv[3:]
    data = sys.stdin.buffer.read()
    named = b'"bundle":"' + copy.encode() + b'"'
    if copy and data.count(named) == 1:
        data = data.replace(named, b'"bundle":' + bundle.encode())
    else:
        import json

        state = json.loads(data or b"{}")
        state["bundle"] = json.loads(bundle)
        data = json.dumps(state).encode()
    r, w = os.pipe()
    room = 65536
    if len(data) > room:  # Kubernetes allows 256 KiB of annotations
        try:
            import fcntl

            room = fcntl.fcntl(w, fcntl.F_SETPIPE_SZ, len(data))
        except OSError:
            pass
    if len(data) <= room:
        os.write(w, data)
    elif os.fork() == 0:  # a pipe that big was refused: a writer child feeds the hook
        os.close(r)
        while data:
            data = data[os.write(w, data):]
        os._exit(0)
    os.close(w)
    os.dup2(r, 0)
    if r != 0:
        os.close(r)
    try:
        os.execve(path, args, os.environ)
    except OSError as e:
        sys.stderr.write(f"hookstate: {path}: {e.strerror}\n")
    return 127


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
