"""Choosing an id range: pure functions over the pool and the ranges already taken.

The pool is the `sysbox` entry of /etc/subuid and /etc/subgid, cut into slots of 65536 ids;
slot k is uid_start + k*65536 and gid_start + k*65536.  A caller may also bring its own
mapping (a spec with uidMappings); such ranges are honoured only if they lie inside the pool
and overlap nothing.
"""

from __future__ import annotations

from dataclasses import dataclass

SLOT = 65536


@dataclass(frozen=True)
class Pool:
    uid_start: int
    uid_count: int
    gid_start: int
    gid_count: int
    subuid_file: str = "/etc/subuid"

    @property
    def slots(self) -> int:
        return min(self.uid_count, self.gid_count) // SLOT

    def slot_range(self, slot: int) -> tuple[int, int]:
        return self.uid_start + slot * SLOT, self.gid_start + slot * SLOT


class Exhausted(Exception):
    """No free range is left in the pool."""


class Conflict(Exception):
    """A caller-chosen mapping overlaps another container's range."""


def overlaps(a_start: int, a_size: int, b_start: int, b_size: int) -> bool:
    return a_start < b_start + b_size and b_start < a_start + a_size


def first_free_slot(pool: Pool, used_slots: set[int], custom: list[tuple[int, int, int]]) -> int:
    """Lowest slot not in use and not overlapping any caller-chosen (uid, gid, size) range."""
    for slot in range(pool.slots):
        if slot in used_slots:
            continue
        uid, gid = pool.slot_range(slot)
        if any(overlaps(uid, SLOT, u, s) or overlaps(gid, SLOT, g, s) for u, g, s in custom):
            continue
        return slot
    raise Exhausted(f"no free {SLOT}-id range: all {pool.slots} ranges of the sysbox entry in "
                    f"{pool.subuid_file} (and /etc/subgid) are in use; extend that entry's count")


class OutsidePool(Exception):
    """A caller-chosen mapping reaches ids outside the pool (host users' ids)."""


def outside_pool(pool: Pool, uid: int, gid: int, size: int) -> str | None:
    """Why a caller-chosen range is not inside the sysbox subuid/subgid pool, or None if it is.
    Ids outside the pool belong to host users (or to nobody yet): no container may map them."""
    if not (pool.uid_start <= uid and uid + size <= pool.uid_start + pool.uid_count):
        return (f"uid range {uid}-{uid + size - 1} is outside the sysbox entry of {pool.subuid_file} "
                f"({pool.uid_start}-{pool.uid_start + pool.uid_count - 1})")
    if not (pool.gid_start <= gid and gid + size <= pool.gid_start + pool.gid_count):
        return (f"gid range {gid}-{gid + size - 1} is outside the sysbox entry of /etc/subgid "
                f"({pool.gid_start}-{pool.gid_start + pool.gid_count - 1})")
    return None


def custom_conflict(uid: int, gid: int, size: int, taken: list[tuple[int, int, int]]) -> bool:
    """Does a caller-chosen mapping overlap any range already taken (slot or custom)?"""
    return any(overlaps(uid, size, u, s) or overlaps(gid, size, g, s) for u, g, s in taken)
