"""/etc/subuid-style files: reading entries and adding the sysbox range safely."""

import pytest

from sysbox import subid


def test_read_and_ensure_appends_after_existing(tmp_path):
    f = tmp_path / "subuid"
    f.write_text("alice:100000:65536\nbob:3000000:65536")  # no trailing newline
    assert subid.read_ranges(str(f)) == []
    start, count = subid.ensure_range(str(f))
    assert start == 3080192 and start % 65536 == 0 and start >= 3000000 + 65536
    assert count == 65536 * 4096
    assert f.read_text().splitlines()[-1] == f"sysbox:{start}:{count}"
    assert subid.ensure_range(str(f)) == (start, count)  # idempotent
    assert subid.read_ranges(str(f), "alice") == [(100000, 65536)]


def test_missing_file_starts_at_first_start(tmp_path):
    start, _ = subid.ensure_range(str(tmp_path / "none"))
    assert start == subid.FIRST_START


def test_malformed_line_names_file_and_line(tmp_path):
    f = tmp_path / "subuid"
    f.write_text("ok:1:2\nsysbox:abc:5\n")
    with pytest.raises(subid.SubidError, match=r"subuid:2: START and COUNT must be integers"):
        subid.read_ranges(str(f))
    f.write_text("garbage\n")
    with pytest.raises(subid.SubidError, match=r"subuid:1: expected NAME:START:COUNT"):
        subid.read_ranges(str(f))
