"""Images for dev VMs: skopeo copies a docker-archive or an OCI layout into the store's OCI
layout; umoci unpacks it once into the store's shared layer of that image, which every VM of
the image then uses as the read-only lower layer of its own overlay.  Neither tool is
re-implemented here."""

from __future__ import annotations

import json
import os
import re
import subprocess
import threading
import time
from typing import Any

from sysbox.devvm.progress import Bar
from sysbox.devvm.store import Store, write_json
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
    import hashlib

    transport, path = source_of(ref)
    st = os.stat(path)
    key = f"{transport}|{st.st_size}|{st.st_mtime_ns}"
    tag = "i" + hashlib.sha256(key.encode()).hexdigest()[:16]
    index = os.path.join(store.images, "sources.json")
    known = _read_json(index)
    if known.get(key) == tag and _has_tag(store, tag):
        if tag not in _tags(store):  # a store from before tags.json
            _remember(store, tag, path)
        return tag
    os.makedirs(store.images, mode=0o700, exist_ok=True)
    os.chmod(store.images, 0o700)  # images are read by host root only (a store made before kept 0755)
    bar = Bar(f"importing {os.path.basename(path.rstrip('/'))}", 1)
    _run(["skopeo", "--insecure-policy", "copy", "-q", transport, f"oci:{store.oci}:{tag}"], f"image {ref}")
    bar.finish()
    known[key] = tag
    write_json(index, known)
    _remember(store, tag, path)
    return tag


def _remember(store: Store, tag: str, path: str) -> None:
    tags = _tags(store)
    tags[tag] = {"name": display_name(path), "source": os.path.abspath(path), "imported": time.time()}
    write_json(os.path.join(store.images, "tags.json"), tags)


def display_name(path: str) -> str:
    """What `sysbox images` calls an image: its file's name without .docker.tar / .tar."""
    base = os.path.basename(os.path.abspath(path).rstrip("/"))
    for suffix in (".docker.tar", ".tar"):
        if base.endswith(suffix) and len(base) > len(suffix):
            return base[: -len(suffix)]
    return base


def _read_json(path: str) -> dict[str, Any]:
    try:
        with open(path) as f:
            return json.load(f)
    except FileNotFoundError:
        return {}


def _tags(store: Store) -> dict[str, dict[str, Any]]:
    return _read_json(os.path.join(store.images, "tags.json"))


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


def shared_layer(store: Store, tag: str) -> str:
    """The image's unpacked layer (rootfs + config.json), unpacked on first use only.

    It is unpacked beside its final place and renamed there when complete, so an interrupted
    unpack never leaves a half rootfs that later VMs would start on."""
    final = store.layer(tag)
    if os.path.exists(os.path.join(final, "config.json")):
        return final
    os.makedirs(store.layers, mode=0o700, exist_ok=True)
    tmp = os.path.join(store.layers, f".{tag}.unpack-{os.getpid()}")
    from sysbox.linux.tree import remove_path

    remove_path(tmp)
    try:
        _unpack(store, tag, tmp, _tags(store).get(tag, {}).get("name", tag))
        os.chmod(tmp, 0o700)
        remove_path(final)
        os.rename(tmp, final)
    except BaseException:
        remove_path(tmp)
        raise
    return final


def layer_size(path: str) -> int:
    """Bytes a tree takes on disk (st_blocks), hard links counted once; what `images` and the
    disk-per-VM bench report."""
    seen: set[tuple[int, int]] = set()
    total = 0
    for dirpath, dirnames, filenames in os.walk(path):
        for n in dirnames + filenames:
            try:
                st = os.lstat(os.path.join(dirpath, n))
            except FileNotFoundError:
                continue
            if (st.st_dev, st.st_ino) not in seen:
                seen.add((st.st_dev, st.st_ino))
                total += st.st_blocks * 512
    return total


def list_images(store: Store, users: dict[str, list[str]]) -> list[dict[str, Any]]:
    """The store's images: id, name, source, unpacked or not, and which VMs use each."""
    rows = []
    for tag, info in sorted(_tags(store).items(), key=lambda kv: kv[1].get("name", "")):
        if not _has_tag(store, tag):
            continue
        rows.append({"id": tag, "name": info.get("name", tag), "source": info.get("source", ""),
                     "unpacked": os.path.exists(os.path.join(store.layer(tag), "config.json")),
                     "created": info.get("imported", 0), "vms": sorted(users.get(tag, []))})
    return rows


def resolve(store: Store, ref: str) -> str:
    """An image's tag from what a user calls it: its id, its name, or its source path."""
    tags = _tags(store)
    if ref in tags:
        return ref
    source = os.path.abspath(ref)
    found = [t for t, i in tags.items() if i.get("name") == ref or i.get("source") == source]
    if len(found) > 1:
        raise SysboxError(f"image {ref}: ambiguous ({', '.join(sorted(found))}); give its id")
    if not found:
        raise SysboxError(f"no such image: {ref} (sysbox images lists them)")
    return found[0]


def remove_image(store: Store, tag: str) -> None:
    """Forget the image: its shared layer, its tag in the OCI layout (umoci gc drops the blobs
    no tag needs any more) and its source entries."""
    from sysbox.linux.tree import remove_path

    remove_path(store.layer(tag))
    if _has_tag(store, tag):
        _run(["umoci", "rm", "--image", f"{store.oci}:{tag}"], f"image {tag}")
        _run(["umoci", "gc", "--layout", store.oci], f"image {tag}")
    tags = _tags(store)
    tags.pop(tag, None)
    write_json(os.path.join(store.images, "tags.json"), tags)
    index = os.path.join(store.images, "sources.json")
    write_json(index, {k: v for k, v in _read_json(index).items() if v != tag})


def _unpack(store: Store, tag: str, bundle: str, label: str) -> None:
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
