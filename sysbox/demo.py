"""`sysbox demo`: the README's first command ends here - run a container and show it working."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile

from sysbox import images
from sysbox.oci.bundle import write_bundle

DEMO_SCRIPT = (
    "echo \"hello from $(hostname), a container run by sysbox-runc\"; "
    "echo \"kernel: $(uname -r)\"; echo \"id: $(id)\"; echo processes:; ps; "
    "echo mounts: $(wc -l < /proc/self/mountinfo)"
)


def sysbox_runc() -> str:
    here = os.path.join(os.path.dirname(sys.executable), "sysbox-runc")
    return here if os.path.exists(here) else (shutil.which("sysbox-runc") or "sysbox-runc")


def run(cache: str = images.DEFAULT_CACHE) -> int:
    meta = images.build("busybox", cache=cache)
    runtime = sysbox_runc()
    with tempfile.TemporaryDirectory(prefix="sysbox-demo-") as tmp:
        bundle, root = os.path.join(tmp, "bundle"), os.path.join(tmp, "state")
        write_bundle(bundle, meta["rootfs"], ["sh", "-c", DEMO_SCRIPT], hostname="sysbox-demo",
                     readonly=True)
        cid = f"sysbox-demo-{os.getpid()}"
        print(f"$ {runtime} --root {root} run --bundle {bundle} {cid}", flush=True)
        try:
            rc = subprocess.call([runtime, "--root", root, "run", "--bundle", bundle, cid], timeout=60)
        finally:
            subprocess.run([runtime, "--root", root, "delete", "--force", cid], capture_output=True)
    print(f"container exited with status {rc}; state and bundle removed")
    return rc
