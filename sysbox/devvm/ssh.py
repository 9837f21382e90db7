"""SSH into dev VMs: whose keys a VM trusts, and `sysbox ssh NAME`.

The keys are the ones given with --ssh-key, else the invoking user's ~/.ssh/*.pub (under sudo,
SUDO_USER's, since that is who will log in).  They are written into the VM's layer as root's
authorized_keys at `run`.  `sysbox ssh` connects to the VM's own address on port 22, with a
known_hosts file of its own per VM (addresses are reused by later VMs; the user's
known_hosts would then cry wolf), trusting the VM's host key on first use.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
from typing import Any

from sysbox.errors import SysboxError

KEY_TYPES = ("ssh-", "ecdsa-", "sk-ssh-", "sk-ecdsa-")


def invoking_home() -> str | None:
    user = os.environ.get("SUDO_USER") if os.geteuid() == 0 else None
    try:
        return pwd.getpwnam(user).pw_dir if user else pwd.getpwuid(os.getuid()).pw_dir
    except KeyError:
        return None


def _read_keys(path: str, flag: bool) -> list[str]:
    try:
        with open(path) as f:
            lines = [line.strip() for line in f if line.strip() and not line.startswith("#")]
    except OSError as e:
        raise SysboxError(f"--ssh-key {path}: {e.strerror}") from None
    bad = [line for line in lines if not line.startswith(KEY_TYPES)]
    if bad or not lines:
        if not flag:
            return []  # a stray *.pub that is no key: not ours to complain about
        raise SysboxError(f"--ssh-key {path}: not an OpenSSH public key file "
                          "(expected lines like 'ssh-ed25519 AAAA...')")
    return lines


def keys_for_run(files: list[str] | None) -> dict[str, Any]:
    """{"ssh_keys": [...], "ssh_identity": private key path or None} for the VM's meta."""
    if files is None:
        home = invoking_home()
        files = sorted(glob.glob(os.path.join(home, ".ssh", "*.pub"))) if home else []
        flag = False
    else:
        flag = True
    keys: list[str] = []
    identity = None
    for path in files:
        found = _read_keys(path, flag)
        keys += [k for k in found if k not in keys]
        private = path[:-4] if path.endswith(".pub") else ""
        if found and identity is None and private and os.path.isfile(private):
            identity = os.path.abspath(private)
    return {"ssh_keys": keys, "ssh_identity": identity}


def argv(meta: dict[str, Any], known_hosts: str, command: list[str], tty: bool) -> list[str]:
    """The ssh(1) command line that logs into the VM as root."""
    binary = shutil.which("ssh")
    if binary is None:
        raise SysboxError("ssh is not installed (apt-get install openssh-client)")
    if not meta.get("ip"):
        raise SysboxError(f"container {meta['name']} has no address (is it running?)")
    out = [binary, "-o", f"UserKnownHostsFile={known_hosts}", "-o", "StrictHostKeyChecking=accept-new",
           "-o", "LogLevel=ERROR"]
    if meta.get("ssh_identity"):
        out += ["-i", meta["ssh_identity"]]
    out += ["-t"] if tty else []
    return out + ["--", f"root@{meta['ip']}", *command]  # after "--", the command's own flags stay its own
