"""The range allocator's pure functions."""

import pytest

from sysbox.mgr import allocator
from sysbox.mgr.allocator import SLOT, Pool

POOL = Pool(1 << 20, 4 * SLOT, 2 << 20, 5 * SLOT, "/etc/subuid")


def test_slots_limited_by_smaller_file():
    assert POOL.slots == 4
    assert POOL.slot_range(2) == ((1 << 20) + 2 * SLOT, (2 << 20) + 2 * SLOT)


def test_first_free_slot_fills_gaps():
    assert allocator.first_free_slot(POOL, set(), []) == 0
    assert allocator.first_free_slot(POOL, {0, 2}, []) == 1
    assert allocator.first_free_slot(POOL, {0, 1, 2}, []) == 3


def test_custom_ranges_are_avoided():
    uid1, gid1 = POOL.slot_range(1)
    assert allocator.first_free_slot(POOL, {0}, [(uid1 + 5, 10, 100)]) == 2
    assert allocator.first_free_slot(POOL, {0}, [(10, gid1 + SLOT - 1, 1)]) == 2


def test_exhausted_message():
    with pytest.raises(allocator.Exhausted, match="all 4 ranges of the sysbox entry in /etc/subuid"):
        allocator.first_free_slot(POOL, {0, 1, 2, 3}, [])


@pytest.mark.parametrize("a, b, expect", [
    ((0, 10), (10, 5), False), ((0, 11), (10, 5), True), ((20, 5), (10, 10), False), ((19, 5), (10, 10), True),
])
def test_overlaps(a, b, expect):
    assert allocator.overlaps(*a, *b) is expect
    assert allocator.overlaps(*b, *a) is expect
