"""sysbox-runc settings: flag over environment over config file; bad lines named."""

from __future__ import annotations

import pytest

from sysbox.runc import settings


@pytest.fixture
def conf(tmp_path, monkeypatch):
    path = tmp_path / "sysbox-runc.conf"
    monkeypatch.setenv("SYSBOX_RUNC_CONFIG", str(path))
    for env in settings.KEYS.values():
        monkeypatch.delenv(env, raising=False)
    monkeypatch.setattr(settings, "_file", None)
    return path


def test_precedence(conf, monkeypatch):
    conf.write_text("# lower runtime for this host\nlower-runtime = crun\nmgr-socket = \"/run/x/mgr.sock\"\n")
    assert settings.get({}, "lower-runtime") == "crun"
    assert settings.get({}, "mgr-socket") == "/run/x/mgr.sock"
    assert settings.get({}, "fs-socket") is None
    monkeypatch.setenv("SYSBOX_LOWER_RUNTIME", "runc")
    assert settings.get({}, "lower-runtime") == "runc"
    assert settings.get({"lower-runtime": "/usr/bin/crun"}, "lower-runtime") == "/usr/bin/crun"


def test_missing_file_is_no_settings(conf):
    assert settings.get({}, "sysbox-state") is None


@pytest.mark.parametrize("line", ["lower_runtime = crun", "just-a-word", "root = /x"])
def test_bad_line_named_with_its_number(conf, line):
    conf.write_text(f"\n{line}\n")
    with pytest.raises(settings.ConfigError, match=r"sysbox-runc.conf:2: expected one of"):
        settings.get({}, "lower-runtime")
