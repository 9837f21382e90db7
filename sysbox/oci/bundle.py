"""Writing OCI bundles for images built by `sysbox image build` (demo, tests, benchmarks)."""

from __future__ import annotations

import json
import os
import subprocess
from typing import Any


def default_spec(runc: str = "runc") -> dict[str, Any]:
    """runc's own default config (`runc spec`), so bundles match what runc users get."""
    import tempfile

    with tempfile.TemporaryDirectory(prefix="sysbox-spec-") as d:
        subprocess.run([runc, "spec", "--bundle", d], check=True, capture_output=True)
        with open(os.path.join(d, "config.json")) as f:
            return json.load(f)


def write_bundle(bundle: str, rootfs: str, args: list[str], *, terminal: bool = False,
                 hostname: str = "syscont", readonly: bool = False,
                 base: dict[str, Any] | None = None) -> dict[str, Any]:
    """Create `bundle`/config.json whose root.path is `rootfs` (absolute) and that runs `args`."""
    spec = json.loads(json.dumps(base)) if base else default_spec()
    spec["root"] = {"path": os.path.abspath(rootfs), "readonly": readonly}
    spec["process"]["args"] = list(args)
    spec["process"]["terminal"] = terminal
    spec["hostname"] = hostname
    os.makedirs(bundle, exist_ok=True)
    save(bundle, spec)
    return spec


def save(bundle: str, spec: dict[str, Any]) -> None:
    with open(os.path.join(bundle, "config.json"), "w") as f:
        json.dump(spec, f, indent=1)
