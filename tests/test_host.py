"""host.Host.runc: the lower runtime started by posix_spawn, as subprocess.call would, but for
the fds: the caller's inherited ones go on to runc (its --preserve-fds counts on them)."""

from __future__ import annotations

import os
import subprocess
import sys

from sysbox.runc.host import Host


def test_exit_status_and_signals_as_subprocess_reports_them(tmp_path):
    host = Host()
    assert host.runc(["/bin/sh", "-c", "exit 3"]) == 3
    assert host.runc(["sh", "-c", "exit 0"]) == 0  # found on PATH, as subprocess finds it
    assert host.runc(["/bin/sh", "-c", "kill -9 $$"]) == -9 == subprocess.call(["/bin/sh", "-c", "kill -9 $$"])


def test_quiet_sends_only_stderr_away(tmp_path):
    code = ("import sys; from sysbox.runc.host import Host\n"
            "sys.exit(Host().runc(['/bin/sh', '-c', 'echo out; echo err >&2'], quiet=sys.argv[1] == 'q'))\n")
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    for flag, err in (("q", ""), ("-", "err\n")):
        out = subprocess.run([sys.executable, "-c", code, flag], capture_output=True, text=True, timeout=30, cwd=root)
        assert (out.returncode, out.stdout, out.stderr) == (0, "out\n", err)


def test_inherited_fds_reach_the_runtime_and_ours_do_not(tmp_path):
    r, w = os.pipe()  # close-on-exec, as every fd Python opens
    inheritable = os.dup(w)
    os.set_inheritable(inheritable, True)
    try:
        probe = f"[ -e /proc/self/fd/{inheritable} ] && echo in; [ -e /proc/self/fd/{w} ] || echo out"
        seen = tmp_path / "seen"
        assert Host().runc(["/bin/sh", "-c", f"({probe}) > {seen}"]) == 0
        assert seen.read_text().split() == ["in", "out"]
    finally:
        for fd in (r, w, inheritable):
            os.close(fd)
