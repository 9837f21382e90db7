"""`sysbox`: the umbrella command (doctor, image, mgr, demo, version)."""

from __future__ import annotations

import argparse
import json
import sys

from sysbox import __version__


def _cmd_doctor(args: argparse.Namespace) -> int:
    from sysbox import doctor

    checks = doctor.run_checks(args.path or None)
    if args.json:
        print(json.dumps([{**c.__dict__, "status": c.status} for c in checks], indent=1))
    else:
        print(doctor.render(checks))
    return 1 if any(not c.ok and c.required for c in checks) else 0


def _cmd_image_build(args: argparse.Namespace) -> int:
    from sysbox import images

    for name in args.names:
        meta = images.build(name, cache=args.cache, mirror=args.mirror, force=args.force)
        print(f"{name}: rootfs {meta['rootfs']}  tarball {meta['tarball']}")
    return 0


def _cmd_image_list(args: argparse.Namespace) -> int:
    from sysbox import images

    for name in sorted(images.BUILDERS):
        meta = images.cached(name, args.cache)
        print(f"{name:<16} " + (f"built {meta['built']}  {meta['rootfs']}" if meta else "not built"))
    return 0


def _cmd_image_path(args: argparse.Namespace) -> int:
    from sysbox import images
    from sysbox.errors import SysboxError

    meta = images.cached(args.name, args.cache)
    if not meta:
        raise SysboxError(f"image {args.name} is not built; run: sysbox image build {args.name}")
    print(meta["tarball" if args.tarball else "rootfs"])
    return 0


def _cmd_mgr_status(args: argparse.Namespace) -> int:
    from sysbox.mgr import client

    status = client.Client(args.socket).call("status")
    if args.json:
        print(json.dumps(status, indent=1))
        return 0
    print(client.render_status(status))
    return 0


def _cmd_install(args: argparse.Namespace) -> int:
    from sysbox import install

    if args.what == "docker":
        print(install.install_docker(args.daemon_json, args.default, args.runtime_arg))
    elif args.what == "containerd":
        from sysbox import runtimeconf

        print(runtimeconf.install_containerd(args.binary or install.runtime_path(), args.config, args.handler))
    elif args.what == "crio":
        from sysbox import runtimeconf

        print(runtimeconf.install_crio(args.binary or install.runtime_path(), args.dropin_dir, args.handler))
    else:
        print(install.install_systemd(args.unit_dir))
    return 0


def _cmd_uninstall(args: argparse.Namespace) -> int:
    from sysbox import install, runtimeconf

    if args.what == "containerd":
        print(runtimeconf.uninstall_containerd(args.config))
    elif args.what == "crio":
        print(runtimeconf.uninstall_crio(args.dropin_dir))
    else:
        print(install.uninstall_docker(args.daemon_json))
    return 0


def _cmd_daemon(args: argparse.Namespace) -> int:
    from sysbox import supervisor

    return supervisor.run(args.run_dir, args.data_root, args.mountpoint, args.log_dir)


def _cmd_demo(args: argparse.Namespace) -> int:
    from sysbox import demo

    if args.cleanup:
        demo.cleanup()
        return 0
    return demo.run(cache=args.cache, keep=args.keep)


def parser() -> argparse.ArgumentParser:
    from sysbox.images import DEFAULT_CACHE, DEFAULT_MIRROR
    from sysbox.mgr.protocol import DEFAULT_SOCKET

    p = argparse.ArgumentParser(prog="sysbox", description="System containers: tools around sysbox-runc.")
    p.add_argument("--version", action="version", version=f"sysbox {__version__}")
    sub = p.add_subparsers(dest="cmd", required=True)

    d = sub.add_parser("doctor", help="check that this host can run system containers")
    d.add_argument("--json", action="store_true", help="machine-readable output")
    d.add_argument("--path", action="append", help="check idmapped mounts on this path (repeatable)")
    d.set_defaults(func=_cmd_doctor)

    img = sub.add_parser("image", help="build and locate local test images").add_subparsers(dest="icmd", required=True)
    b = img.add_parser("build", help="build images (busybox, debian-systemd) into the cache")
    b.add_argument("names", nargs="+", metavar="NAME")
    b.add_argument("--cache", default=DEFAULT_CACHE, help=f"cache directory (default {DEFAULT_CACHE})")
    b.add_argument("--mirror", default=DEFAULT_MIRROR, help=f"Debian mirror (default {DEFAULT_MIRROR})")
    b.add_argument("--force", action="store_true", help="rebuild even if cached")
    b.set_defaults(func=_cmd_image_build)
    ls = img.add_parser("list", help="list images and whether they are built")
    ls.add_argument("--cache", default=DEFAULT_CACHE)
    ls.set_defaults(func=_cmd_image_list)
    pa = img.add_parser("path", help="print an image's rootfs (or --tarball) path")
    pa.add_argument("name")
    pa.add_argument("--tarball", action="store_true")
    pa.add_argument("--cache", default=DEFAULT_CACHE)
    pa.set_defaults(func=_cmd_image_path)

    mgr = sub.add_parser("mgr", help="talk to sysbox-mgr").add_subparsers(dest="mcmd", required=True)
    st = mgr.add_parser("status", help="containers, their id ranges and special dirs")
    st.add_argument("--json", action="store_true")
    st.add_argument("--socket", default=DEFAULT_SOCKET, help=f"manager socket (default {DEFAULT_SOCKET})")
    st.set_defaults(func=_cmd_mgr_status)

    ins = sub.add_parser("install", help="register sysbox-runc with Docker, containerd or CRI-O; or install systemd units")
    ins.add_argument("what", choices=["docker", "containerd", "crio", "systemd"])
    ins.add_argument("--config", default="/etc/containerd/config.toml", help="containerd's config file")
    ins.add_argument("--dropin-dir", default="/etc/crio/crio.conf.d", help="CRI-O's drop-in directory")
    ins.add_argument("--handler", default="sysbox-runc", help="runtime handler name (RuntimeClass handler)")
    ins.add_argument("--binary", help="sysbox-runc's path as the runtime will see it (default: this installation's)")
    ins.add_argument("--daemon-json", default="/etc/docker/daemon.json", help="dockerd's config file")
    ins.add_argument("--default", action="store_true", help="make sysbox-runc Docker's default runtime")
    ins.add_argument("--runtime-arg", action="append", help="extra sysbox-runc argument (repeatable)")
    ins.add_argument("--unit-dir", default="/etc/systemd/system", help="where to write the units")
    ins.set_defaults(func=_cmd_install)
    un = sub.add_parser("uninstall", help="remove sysbox-runc from Docker's, containerd's or CRI-O's configuration")
    un.add_argument("what", choices=["docker", "containerd", "crio"])
    un.add_argument("--daemon-json", default="/etc/docker/daemon.json")
    un.add_argument("--config", default="/etc/containerd/config.toml")
    un.add_argument("--dropin-dir", default="/etc/crio/crio.conf.d")
    un.set_defaults(func=_cmd_uninstall)
    dmn = sub.add_parser("daemon", help="run sysbox-mgr and sysbox-fs in the foreground (hosts without systemd)")
    dmn.add_argument("--run-dir", default="/run/sysbox", help="sockets and pid files (default /run/sysbox)")
    dmn.add_argument("--data-root", default="/var/lib/sysbox", help="sysbox-mgr's data (default /var/lib/sysbox)")
    dmn.add_argument("--mountpoint", default="/var/lib/sysboxfs", help="sysbox-fs's FUSE mount")
    dmn.add_argument("--log-dir", help="write sysbox-mgr.log and sysbox-fs.log here (default: stderr)")
    dmn.set_defaults(func=_cmd_daemon)

    dm = sub.add_parser("demo", help="boot a systemd system container with Docker inside (what `make demo` shows)")
    dm.add_argument("--cache", default=DEFAULT_CACHE)
    dm.add_argument("--keep", action="store_true", help="leave the container running")
    dm.add_argument("--cleanup", action="store_true", help="stop and remove what `demo --keep` left running")
    dm.set_defaults(func=_cmd_demo)
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        return args.func(args)
    except Exception as e:  # noqa: BLE001 - expected errors become one line, bugs keep tracebacks
        from sysbox.errors import describe

        msg = describe(e)
        if msg is None:
            raise
        print(f"sysbox: {msg}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
