"""A stand-in for a stream of sysbox-runc processes: register, then create the runtime's state
dir (as `runc create` would), sometimes delete an earlier container (state dir first, then
unregister, as `sysbox-runc delete` does).  Every reply it saw goes to an output file, one line
each, so the test can check the manager against what clients were told."""

import json
import os
import random
import shutil
import sys

from sysbox.ipc import IPCError
from sysbox.mgr.client import Client


def main() -> int:
    sock, runtime_root, out_path, prefix, count, seed = sys.argv[1:7]
    rng = random.Random(int(seed))
    alive: list[str] = []
    with open(out_path, "a", buffering=1) as out, Client(sock, timeout=10) as c:
        for i in range(int(count)):
            cid = f"{prefix}-{i}"
            try:
                if alive and rng.random() < 0.3:
                    victim = alive.pop(rng.randrange(len(alive)))
                    shutil.rmtree(os.path.join(runtime_root, victim))
                    out.write(f"deleting {victim}\n")
                    c.call("unregister", id=victim)
                    out.write(f"deleted {victim}\n")
                r = c.call("register", id=cid, rootfs="/nonexistent-rootfs", runtime_root=runtime_root)
            except IPCError:
                return 0  # the manager went away mid-burst: that is the point of the test
            os.makedirs(os.path.join(runtime_root, cid))
            with open(os.path.join(runtime_root, cid, "state.json"), "w") as f:
                json.dump({"id": cid}, f)
            out.write(f"got {cid} {r['uid']} {r['gid']}\n")
            alive.append(cid)
    return 0


if __name__ == "__main__":
    sys.exit(main())
