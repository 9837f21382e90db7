"""Images for dev VMs: skopeo copies a docker-archive or an OCI layout into the store's OCI
layout; umoci unpacks it into a container's bundle.  Neither is re-implemented here."""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import threading

from sysbox.devvm.progress import Bar
from sysbox.devvm.store import Store
from sysbox.errors import SysboxError


def _run(argv: list[str], what: str) -> None:
    try:
        out = subprocess.run(argv, capture_output=True, text=True, check=False)
    except FileNotFoundError:
        raise SysboxError(f"{argv[0]} is not installed (apt-get install {argv[0]})") from None
    if out.returncode != 0:
        msg = (out.stderr.strip().splitlines() or [f"exit {out.returncode}"])[-1]
        raise SysboxError(f"{what}: {msg}")


def source_of(ref: str) -> tuple[str, str]:
    """(skopeo transport reference, path) for IMAGE as given on the command line:
    a docker-archive tarball, an OCI layout dir (optionally DIR:TAG), or oci:/docker-archive: prefixed."""
    for prefix in ("docker-archive:", "oci:"):
        if ref.startswith(prefix):
            return ref, ref[len(prefix):].split(":")[0]
    path, _, tag = ref.partition(":") if not os.path.exists(ref) else (ref, "", "")
    if os.path.isdir(path) and os.path.exists(os.path.join(path, "oci-layout")):
        return f"oci:{os.path.abspath(path)}" + (f":{tag}" if tag else ""), path
    if os.path.isfile(ref):
        return f"docker-archive:{os.path.abspath(ref)}", ref
    raise SysboxError(f"image {ref}: not a docker-archive tarball or an OCI layout directory")


def import_image(store: Store, ref: str) -> str:
    """Copy the image into the store (once per source file version); returns its tag."""
    transport, path = source_of(ref)
    st = os.stat(path)
    key = f"{transport}|{st.st_size}|{st.st_mtime_ns}"
    tag = "i" + hashlib.sha256(key.encode()).hexdigest()[:16]
    index = os.path.join(store.images, "sources.json")
    try:
        with open(index) as f:
            known = json.load(f)
    except FileNotFoundError:
        known = {}
    if known.get(key) == tag and _has_tag(store, tag):
        return tag
    os.makedirs(store.images, exist_ok=True)
    bar = Bar(f"importing {os.path.basename(path.rstrip('/'))}", 1)
    _run(["skopeo", "--insecure-policy", "copy", "-q", transport, f"oci:{store.oci}:{tag}"], f"image {ref}")
    bar.finish()
    known[key] = tag
    with open(index + ".tmp", "w") as f:
        json.dump(known, f)
    os.replace(index + ".tmp", index)
    return tag


def _has_tag(store: Store, tag: str) -> bool:
    try:
        with open(os.path.join(store.oci, "index.json")) as f:
            index = json.load(f)
    except FileNotFoundError:
        return False
    return any((m.get("annotations") or {}).get("org.opencontainers.image.ref.name") == tag
               for m in index.get("manifests", []))


def _blob(store: Store, digest: str) -> str:
    algo, _, hexd = digest.partition(":")
    if not re.fullmatch(r"[a-f0-9]{64}", hexd):
        raise SysboxError(f"image: bad digest {digest!r}")
    return os.path.join(store.oci, "blobs", algo, hexd)


def unpacked_size(store: Store, tag: str) -> int:
    """The layers' uncompressed size, for the progress bar: gzip's trailer holds it (mod 4 GiB)."""
    with open(os.path.join(store.oci, "index.json")) as f:
        index = json.load(f)
    desc = next(m for m in index["manifests"]
                if (m.get("annotations") or {}).get("org.opencontainers.image.ref.name") == tag)
    with open(_blob(store, desc["digest"])) as f:
        manifest = json.load(f)
    total = 0
    for layer in manifest.get("layers", []):
        path = _blob(store, layer["digest"])
        if layer.get("mediaType", "").endswith("gzip"):
            with open(path, "rb") as f:
                f.seek(-4, os.SEEK_END)
                total += int.from_bytes(f.read(4), "little")
        else:
            total += os.path.getsize(path)
    return total


def unpack(store: Store, tag: str, bundle: str, label: str) -> None:
    """umoci unpack into `bundle`, with a bar driven by the bytes the filesystem gained."""
    total = unpacked_size(store, tag)
    parent = os.path.dirname(bundle)

    def used() -> int:
        s = os.statvfs(parent)
        return (s.f_blocks - s.f_bfree) * s.f_frsize

    base = used()
    bar = Bar(f"unpacking {label}", total)
    done = threading.Event()

    def watch() -> None:
        while not done.wait(0.2):
            bar.update(max(0, used() - base))

    t = threading.Thread(target=watch, daemon=True)
    t.start()
    try:
        _run(["umoci", "unpack", "--image", f"{store.oci}:{tag}", bundle], f"unpacking {label}")
    finally:
        done.set()
        t.join()
    bar.finish(f"({total // (1 << 20)} MiB)")
