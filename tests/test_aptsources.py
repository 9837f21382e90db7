"""The host's Debian mirror, read from apt sources in both formats (files faked in tmp_path)."""

import pytest

from sysbox import aptsources
from sysbox.errors import SysboxError


def _host(tmp_path, one_line: str = "", **parts: str):
    (tmp_path / "d").mkdir()
    (tmp_path / "sources.list").write_text(one_line)
    for name, text in parts.items():
        (tmp_path / "d" / name.replace("_", ".")).write_text(text)
    return str(tmp_path / "sources.list"), str(tmp_path / "d")


def test_deb822_stanza_of_the_suite(tmp_path):
    src = _host(tmp_path, debian_sources=(
        "Types: deb\nURIs: http://mirror.invalid/security\nSuites: bookworm-security\nComponents: main\n\n"
        "# a comment\nTypes: deb deb-src\nURIs: http://mirror.invalid/debian/\n"
        "Suites: bookworm bookworm-updates\nComponents: main contrib\n"))
    assert aptsources.host_mirror("bookworm", *src) == "http://mirror.invalid/debian"


def test_one_line_with_options_wins_by_order(tmp_path):
    src = _host(tmp_path, "deb-src http://a.invalid/debian bookworm main\n"
                          "deb [arch=amd64 signed-by=/k.gpg] http://b.invalid/debian bookworm main # local\n",
                debian_sources="Types: deb\nURIs: http://c.invalid/debian\nSuites: bookworm\nComponents: main\n")
    assert aptsources.host_mirror("bookworm", *src) == "http://b.invalid/debian"


def test_disabled_stanzas_and_other_components_are_skipped(tmp_path):
    src = _host(tmp_path, x_sources=(
        "Enabled: no\nTypes: deb\nURIs: http://off.invalid/debian\nSuites: bookworm\nComponents: main\n\n"
        "Types: deb\nURIs: http://np.invalid/debian\nSuites: bookworm\nComponents: non-free\n"),
        y_list="deb http://on.invalid/debian bookworm main\n")
    assert aptsources.host_mirror("bookworm", *src) == "http://on.invalid/debian"


def test_no_mirror_is_one_clear_line(tmp_path):
    src = _host(tmp_path, "deb http://a.invalid/debian trixie main\n")
    with pytest.raises(SysboxError, match=r"^no Debian bookworm mirror in the host's apt sources .*pass --mirror URL$"):
        aptsources.host_mirror("bookworm", *src)
