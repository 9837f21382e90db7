"""/proc/sys as a container should see it.

- Knobs that are global to the host but that system software writes at boot (kernel.panic,
  vm.overcommit_memory, fs.file-max, nf_conntrack_max, ...) are emulated: each container
  reads the host's value until it writes its own, which only it sees.  The host value never
  changes.
- Knobs the kernel keys by namespace (net.*, IPC limits, hostname) are read and written for
  real, in the caller's network, IPC or UTS namespace.
- Everything else reads the host's value; writing it fails with EACCES, as it would for root
  in a user namespace.
"""

from __future__ import annotations

import errno
import uuid

from sysbox.fs.container import Container
from sysbox.fs.nodes import parse_int
from sysbox.fs.nodes.mirror import Entry, HostMirror

QDISCS = {"fq", "fq_codel", "sfq", "pfifo_fast", "pfifo", "cake", "noqueue"}
# Values for knobs whose host module is absent (nf_conntrack not loaded): the kernel's defaults.
DEFAULTS = {"net/netfilter/nf_conntrack_max": 262144, "net/netfilter/nf_conntrack_tcp_be_liberal": 0,
            "net/netfilter/nf_conntrack_generic_timeout": 600,
            "net/netfilter/nf_conntrack_tcp_timeout_established": 432000,
            "net/netfilter/nf_conntrack_tcp_timeout_close_wait": 60}
_IPC = ("kernel/shmmax", "kernel/shmall", "kernel/shmmni", "kernel/shm_rmid_forced", "kernel/msgmax",
        "kernel/msgmnb", "kernel/msgmni", "kernel/sem", "kernel/msg_next_id", "kernel/sem_next_id",
        "kernel/shm_next_id", "fs/mqueue/")


class Cached(Entry):
    """Per-container value, initialised from the host; writes validated like the kernel's."""

    def __init__(self, lo: int | None = None, hi: int | None = None, count: int = 1,
                 choices: set[str] | None = None) -> None:
        self.lo, self.hi, self.count, self.choices = lo, hi, count, choices

    def read(self, c: Container, rel: str) -> bytes:
        if rel in c.sysctl:
            return c.sysctl[rel]
        try:
            with open(f"/proc/sys/{rel}", "rb") as f:
                return f.read()
        except OSError:
            return f"{DEFAULTS.get(rel, 0)}\n".encode()

    def write(self, c: Container, rel: str, data: bytes) -> None:
        if self.choices is not None:
            value = data.decode(errors="replace").strip()
            if value not in self.choices:
                raise OSError(errno.ENOENT, "unknown qdisc")  # what the kernel answers
            c.sysctl[rel] = f"{value}\n".encode()
            return
        parts = data.split()
        if not parts or len(parts) > self.count:
            raise OSError(errno.EINVAL, "invalid value")
        values = [parse_int(p, self.lo, self.hi) for p in parts]
        if self.count > 1:  # e.g. printk: later fields keep their previous values
            old = self.read(c, rel).split()
            values += [int(x) for x in old[len(values):self.count]]
        c.sysctl[rel] = ("\t".join(str(v) for v in values) + "\n").encode()


class ReadOnly(Entry):
    mode = 0o444

    def read(self, c: Container, rel: str) -> bytes:
        with open(f"/proc/sys/{rel}", "rb") as f:
            return f.read()


class BootId(Entry):
    mode = 0o444

    def read(self, c: Container, rel: str) -> bytes:
        return f"{c.boot_id}\n".encode()


class FreshUuid(Entry):
    mode = 0o444

    def read(self, c: Container, rel: str) -> bytes:
        return f"{uuid.uuid4()}\n".encode()

    def write(self, c: Container, rel: str, data: bytes) -> None:
        # the container's root owns the file and may open it for writing (CAP_DAC_OVERRIDE);
        # the refusal is the one a container gets from the kernel's file, owned by host root
        raise OSError(errno.EACCES, "read-only")


def _emulated() -> dict[str, Entry]:
    any_int = Cached()
    nonneg = Cached(0)
    table: dict[str, Entry] = {
        "kernel/panic": any_int, "kernel/panic_on_oops": Cached(0, 1), "kernel/printk": Cached(count=4),
        "kernel/sysrq": Cached(0, 511), "kernel/kptr_restrict": Cached(0, 2), "kernel/dmesg_restrict": Cached(0, 1),
        "kernel/pid_max": Cached(301, 4194304), "kernel/ngroups_max": ReadOnly(), "kernel/cap_last_cap": ReadOnly(),
        "kernel/yama/ptrace_scope": Cached(0, 3),
        "kernel/random/boot_id": BootId(), "kernel/random/uuid": FreshUuid(),
        "kernel/random/urandom_min_reseed_secs": nonneg, "kernel/random/write_wakeup_threshold": nonneg,
        "vm/overcommit_memory": Cached(0, 2), "vm/mmap_min_addr": nonneg,
        "fs/file-max": nonneg, "fs/nr_open": Cached(1024, 1073741816),
        "fs/protected_hardlinks": Cached(0, 1), "fs/protected_symlinks": Cached(0, 1),
        "fs/inotify/max_queued_events": nonneg, "fs/inotify/max_user_instances": nonneg,
        "fs/inotify/max_user_watches": nonneg,
        "net/netfilter/nf_conntrack_max": nonneg, "net/netfilter/nf_conntrack_tcp_be_liberal": Cached(0, 1),
        "net/netfilter/nf_conntrack_generic_timeout": nonneg,
        "net/core/somaxconn": nonneg, "net/core/default_qdisc": Cached(choices=QDISCS),
        "net/unix/max_dgram_qlen": nonneg,
    }
    for name in ("gc_delay", "maxbytes", "maxkeys", "root_maxbytes", "root_maxkeys", "persistent_keyring_expiry"):
        table[f"kernel/keys/{name}"] = nonneg
    for state in ("established", "close_wait", "syn_sent", "syn_recv", "fin_wait", "time_wait", "close",
                  "last_ack", "max_retrans", "unacknowledged"):
        table[f"net/netfilter/nf_conntrack_tcp_timeout_{state}"] = nonneg
    return table


class ProcSys(HostMirror):
    base = "/proc/sys"
    emulated = _emulated()

    def namespaces(self, rel: str) -> tuple[str, ...]:
        if rel.startswith("net/") or rel == "net":
            return ("net",)
        if rel.startswith(_IPC):
            return ("ipc",)
        if rel in ("kernel/hostname", "kernel/domainname"):
            return ("uts",)
        return ()

    def writable(self, rel: str) -> bool:
        return bool(self.namespaces(rel))
