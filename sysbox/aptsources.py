"""The Debian mirror this host's apt uses, for image builds (`sysbox image build`).

A host set up for a local mirror or a proxy names it in its apt sources; building from any
other mirror would fail there.  Both formats are read: one-line (`deb [opts] URI SUITE COMP...`
in sources.list and *.list) and deb822 (*.sources stanzas with Types/URIs/Suites/Components,
`Enabled: no` honoured).  The first `deb` source of SUITE with the `main` component wins.
"""

from __future__ import annotations

import glob
import os

from sysbox.errors import SysboxError

SOURCES = "/etc/apt/sources.list"
SOURCES_DIR = "/etc/apt/sources.list.d"


def _one_line(text: str) -> list[tuple[list[str], list[str], list[str], list[str]]]:
    out = []
    for line in text.splitlines():
        words = line.split("#", 1)[0].split()
        if len(words) < 3:
            continue
        kind, rest = words[0], words[1:]
        if rest[0].startswith("["):  # options: [arch=amd64 signed-by=...]
            while rest and not rest[0].endswith("]"):
                rest = rest[1:]
            rest = rest[1:]
        if len(rest) >= 2:
            out.append(([kind], [rest[0]], [rest[1]], rest[2:]))
    return out


def _deb822(text: str) -> list[tuple[list[str], list[str], list[str], list[str]]]:
    out = []
    for stanza in text.split("\n\n"):
        fields: dict[str, str] = {}
        key = ""
        for line in stanza.splitlines():
            if line.startswith("#") or not line.strip():
                continue
            if line[0].isspace() and key:  # a continuation line
                fields[key] += " " + line.strip()
                continue
            key, _, value = line.partition(":")
            key = key.strip().lower()
            fields[key] = value.strip()
        if fields.get("enabled", "yes").lower() == "no":
            continue
        out.append((fields.get("types", "").split(), fields.get("uris", "").split(),
                    fields.get("suites", "").split(), fields.get("components", "").split()))
    return out


def host_mirror(suite: str, sources: str = SOURCES, sources_dir: str = SOURCES_DIR) -> str:
    """The host's mirror of Debian `suite` (its URI, without a trailing slash)."""
    entries = []
    paths = [sources] + sorted(glob.glob(os.path.join(sources_dir, "*.list"))) + \
        sorted(glob.glob(os.path.join(sources_dir, "*.sources")))
    for path in paths:
        try:
            with open(path) as f:
                text = f.read()
        except (FileNotFoundError, UnicodeDecodeError):
            continue
        entries += _deb822(text) if path.endswith(".sources") else _one_line(text)
    for types, uris, suites, components in entries:
        if "deb" in types and suite in suites and "main" in components and uris:
            return uris[0].rstrip("/")
    raise SysboxError(f"no Debian {suite} mirror in the host's apt sources ({sources}, {sources_dir}); "
                      "pass --mirror URL")
