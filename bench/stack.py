"""What every benchmark starts and tears down: a private sysbox-mgr and sysbox-fs, sysbox-runc's
argv wired to them, and (optionally) lxcfs on a private mount, under one scratch dir."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from integration.cleanup import remove_tree  # noqa: E402
from integration.daemons import Fs, Mgr  # noqa: E402

VENV_BIN = os.path.dirname(sys.executable)


class Stack:
    def __init__(self, name: str, lxcfs: bool = False, gc_interval: float = 30.0) -> None:
        self.work = tempfile.mkdtemp(prefix=f"sysbox-{name}-")
        os.chmod(self.work, 0o711)  # container roots traverse it to their bundles' rootfs
        self.state = f"/run/sysbox-{name}-{os.getpid()}"
        os.makedirs(self.state, mode=0o711)
        self.root = os.path.join(self.work, "runc")
        self.mgr = Mgr(os.path.join(self.work, "mgr"), gc_interval=gc_interval).start()
        self.fs = Fs(os.path.join(self.work, "fs")).start()
        self.runtime = [os.path.join(VENV_BIN, "sysbox-runc"), "--mgr-socket", self.mgr.socket, "--fs-socket",
                        self.fs.socket, "--sysbox-state", self.state, "--root", self.root]
        self.lxcfs_mnt = os.path.join(self.work, "lxcfs")
        self.lxcfs: subprocess.Popen | None = None
        if lxcfs:
            os.makedirs(self.lxcfs_mnt)
            self.lxcfs = subprocess.Popen(["lxcfs", self.lxcfs_mnt], stdout=subprocess.DEVNULL,
                                          stderr=subprocess.DEVNULL)
            deadline = time.monotonic() + 5
            while not os.path.ismount(self.lxcfs_mnt) and time.monotonic() < deadline:
                time.sleep(0.05)

    def stop(self) -> None:
        """Delete what runc still knows, stop the daemons, remove the scratch trees."""
        listed = subprocess.run(["runc", "--root", self.root, "list", "-q"], capture_output=True, text=True).stdout
        for cid in listed.split():
            subprocess.run(self.runtime + ["delete", "--force", cid], capture_output=True)
        if self.lxcfs is not None:
            self.lxcfs.terminate()
            self.lxcfs.wait(10)
            subprocess.run(["umount", "-l", self.lxcfs_mnt], capture_output=True)
        self.fs.stop()
        self.mgr.stop()
        remove_tree(self.state, self.work)
