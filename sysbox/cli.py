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
    print(meta["tarball" if args.tarball else "docker_archive" if args.archive else "rootfs"])
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


def _devvm_env(args: argparse.Namespace):
    from sysbox.devvm.commands import Env
    from sysbox.devvm.store import Store

    return Env(Store(args.store), args.run_root, args.mgr_socket, args.fs_socket, args.sysbox_state,
               args.bridge, args.subnet)


def _cmd_run(args: argparse.Namespace) -> int:
    from sysbox.devvm import commands

    opts = commands.RunOptions(image=args.image, name=args.name, ports=args.publish or [], volumes=args.volume or [],
                               cmd=args.command, env=args.env or [], hostname=args.hostname, memory=args.memory,
                               cpus=args.cpus, cpuset=args.cpuset_cpus, pids=args.pids_limit, restart=args.restart,
                               ssh_keys=args.ssh_key)
    print(commands.run(_devvm_env(args), opts))
    return 0


def _cmd_ps(args: argparse.Namespace) -> int:
    from sysbox.devvm import commands

    rows = commands.ps(_devvm_env(args), all_=args.all)
    if args.json:
        print(json.dumps(rows, indent=1))
        return 0
    fmt = "{:<20} {:<9} {:<15} {:<24} {}"
    print(fmt.format("NAME", "STATUS", "IP", "PORTS", "IMAGE"))
    for r in rows:
        print(fmt.format(r["name"], r["status"], r["ip"], r["ports"], r["image"]))
    return 0


def _cmd_exec(args: argparse.Namespace) -> int:
    from sysbox.devvm import commands

    return commands.exec_(_devvm_env(args), args.name, args.command, args.tty, args.interactive)


def _cmd_stop(args: argparse.Namespace) -> int:
    from sysbox.devvm import commands

    for name in args.names:
        commands.stop(_devvm_env(args), name, args.time)
        print(name)
    return 0


def _start_all(env, watch: bool) -> int:
    from sysbox.devvm import commands

    failed = 0
    for name, error in commands.start_all(env):
        print(name if error is None else f"{name}: {error}", file=sys.stdout if error is None else sys.stderr,
              flush=True)
        failed += error is not None
    if not watch:
        return 1 if failed else 0
    import signal

    from sysbox.devvm.watch import Watcher

    w = Watcher(env)
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: w.stopping.set())
    w.run()
    return 0


def _cmd_start(args: argparse.Namespace) -> int:
    from sysbox.devvm import commands
    from sysbox.errors import SysboxError

    env = _devvm_env(args)
    if args.watch and not args.all:
        raise SysboxError("start --watch goes with --all")
    if args.all and args.names:
        raise SysboxError("start --all takes no names")
    if args.all:
        return _start_all(env, args.watch)
    if not args.names:
        raise SysboxError("start: give the containers' names, or --all")
    for name in args.names:
        commands.start(env, name)
        print(name)
    return 0


def _cmd_rm(args: argparse.Namespace) -> int:
    from sysbox.devvm import commands

    for name in args.names:
        commands.rm(_devvm_env(args), name, args.force)
        print(name)
    return 0


def _cmd_ssh(args: argparse.Namespace) -> int:
    import os

    from sysbox.devvm import commands, ssh

    env = _devvm_env(args)
    meta = env.store.load(args.name)
    if commands.status(env, meta) != "running":
        from sysbox.errors import SysboxError

        raise SysboxError(f"container {args.name} is not running: sysbox start {args.name} first")
    argv = ssh.argv(meta, os.path.join(env.store.cdir(args.name), "known_hosts"), args.command, args.tty)
    os.execv(argv[0], argv)


def _cmd_logs(args: argparse.Namespace) -> int:
    from sysbox.devvm import logs

    try:
        return logs.logs(_devvm_env(args), args.name, args.follow)
    except KeyboardInterrupt:
        return 130


def _cmd_cp(args: argparse.Namespace) -> int:
    from sysbox.devvm import transfer

    transfer.cp(_devvm_env(args), args.src, args.dst)
    return 0


def _cmd_snapshot(args: argparse.Namespace) -> int:
    import time

    from sysbox.devvm import snapshots
    from sysbox.errors import SysboxError

    env = _devvm_env(args)
    if args.list and args.snapshot:
        raise SysboxError("snapshot --list takes no SNAPSHOT")
    if args.snapshot is None:
        for row in snapshots.list_(env, args.name):
            print(f"{row['name']:<20} {time.strftime('%Y-%m-%d %H:%M:%S', time.localtime(row['created']))}"
                  + ("  (taken running)" if row.get("running") else ""))
        return 0
    snapshots.snapshot(env, args.name, args.snapshot)
    print(f"{args.name}@{args.snapshot}")
    return 0


def _cmd_restore(args: argparse.Namespace) -> int:
    from sysbox.devvm import snapshots

    snapshots.restore(_devvm_env(args), args.name, args.snapshot)
    print(f"{args.name}@{args.snapshot}")
    return 0


def _cmd_clone(args: argparse.Namespace) -> int:
    from sysbox.devvm import snapshots

    snapshots.clone(_devvm_env(args), args.name, args.new)
    print(args.new)
    return 0


def _cmd_images(args: argparse.Namespace) -> int:
    from sysbox.devvm import commands

    rows = commands.images(_devvm_env(args), sizes=not args.json or args.size)
    if args.json:
        print(json.dumps(rows, indent=1))
        return 0
    fmt = "{:<18} {:<20} {:>9} {}"
    print(fmt.format("ID", "NAME", "SIZE", "USED BY"))
    for r in rows:
        size = f"{r['size'] / (1 << 20):.0f} MiB" if r.get("size") is not None else "-"
        print(fmt.format(r["id"], r["name"], size, ",".join(r["vms"]) or "-"))
    return 0


def _cmd_rmi(args: argparse.Namespace) -> int:
    from sysbox.devvm import commands

    for ref in args.images:
        print(commands.rmi(_devvm_env(args), ref))
    return 0


def _devvm_options(p: argparse.ArgumentParser) -> None:
    from sysbox.devvm.commands import DEFAULT_RUN_ROOT
    from sysbox.devvm.store import DEFAULT_ROOT

    g = p.add_argument_group("where (defaults: the machine's own sysbox)")
    g.add_argument("--store", default=DEFAULT_ROOT, help=f"images and containers (default {DEFAULT_ROOT})")
    g.add_argument("--run-root", default=DEFAULT_RUN_ROOT, help=f"runtime state (default {DEFAULT_RUN_ROOT})")
    g.add_argument("--mgr-socket", help="sysbox-mgr socket (default: /run/sysbox/mgr.sock, started if absent)")
    g.add_argument("--fs-socket", help="sysbox-fs socket (default: /run/sysbox/fs.sock, started if absent)")
    g.add_argument("--sysbox-state", help="sysbox-runc's state dir")
    g.add_argument("--bridge", default="sysbox0", help="CNI bridge name (default sysbox0)")
    g.add_argument("--subnet", default="10.89.0.0/24", help="CNI subnet (default 10.89.0.0/24)")


def _cmd_demo(args: argparse.Namespace) -> int:
    from sysbox import demo

    if args.cleanup:
        demo.cleanup()
        return 0
    return demo.run(cache=args.cache, keep=args.keep)


def parser() -> argparse.ArgumentParser:
    from sysbox.images import DEFAULT_CACHE
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
    b.add_argument("--mirror", default=None,
                   help="Debian mirror URL (default: the one the host's apt sources name for bookworm)")
    b.add_argument("--force", action="store_true", help="rebuild even if cached")
    b.set_defaults(func=_cmd_image_build)
    ls = img.add_parser("list", help="list images and whether they are built")
    ls.add_argument("--cache", default=DEFAULT_CACHE)
    ls.set_defaults(func=_cmd_image_list)
    pa = img.add_parser("path", help="print an image's rootfs (or --tarball, --archive) path")
    pa.add_argument("name")
    what = pa.add_mutually_exclusive_group()
    what.add_argument("--tarball", action="store_true", help="the rootfs tarball (docker import)")
    what.add_argument("--archive", action="store_true", help="the docker-archive (docker load, sysbox run)")
    pa.add_argument("--cache", default=DEFAULT_CACHE)
    pa.set_defaults(func=_cmd_image_path)

    mgr = sub.add_parser("mgr", help="talk to sysbox-mgr").add_subparsers(dest="mcmd", required=True)
    st = mgr.add_parser("status", help="containers, their id ranges and special dirs")
    st.add_argument("--json", action="store_true")
    st.add_argument("--socket", default=DEFAULT_SOCKET, help=f"manager socket (default {DEFAULT_SOCKET})")
    st.set_defaults(func=_cmd_mgr_status)

    ins = sub.add_parser("install",
                         help="register sysbox-runc with Docker, containerd or CRI-O; or install systemd units")
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

    r = sub.add_parser("run", help="start a system container as a dev VM (no Docker needed)")
    r.add_argument("--name", help="container name (default: vm-XXXXXXXX)")
    r.add_argument("-p", "--publish", action="append", metavar="[IP:]HOST:CTR[/PROTO]", help="publish a port")
    r.add_argument("-v", "--volume", action="append", metavar="SRC:DST[:ro]", help="bind a host path")
    r.add_argument("-e", "--env", action="append", metavar="NAME[=VALUE]",
                   help="set an environment variable (NAME alone: the host's value)")
    r.add_argument("--hostname", help="the VM's hostname (default: its name)")
    r.add_argument("-m", "--memory", metavar="SIZE", help="memory limit, e.g. 512m, 2g (free shows it)")
    r.add_argument("--cpus", metavar="N", help="CPU limit, e.g. 1.5 (nproc-style views show it)")
    r.add_argument("--cpuset-cpus", metavar="LIST", help="CPUs it may run on, e.g. 0-1,3 (what nproc counts)")
    r.add_argument("--pids-limit", metavar="N", help="most processes and threads at once")
    r.add_argument("--restart", default="no", metavar="no|always",
                   help="always: started again by `sysbox start --all` at boot (default no)")
    r.add_argument("--ssh-key", action="append", metavar="FILE",
                   help="public key(s) root may log in with (default: your ~/.ssh/*.pub)")
    r.add_argument("-d", "--detach", action="store_true", help="accepted for Docker habits; always detached")
    r.add_argument("image", help="docker-archive tarball or OCI layout dir[:tag]")
    r.add_argument("command", nargs=argparse.REMAINDER, help="command (default: the image's)")
    _devvm_options(r)
    r.set_defaults(func=_cmd_run)
    ps_ = sub.add_parser("ps", help="list dev-VM containers")
    ps_.add_argument("-a", "--all", action="store_true", help="include stopped containers")
    ps_.add_argument("--json", action="store_true")
    _devvm_options(ps_)
    ps_.set_defaults(func=_cmd_ps)
    ex = sub.add_parser("exec", help="run a command in a dev-VM container")
    ex.add_argument("-i", "--interactive", action="store_true", help="keep stdin attached")
    ex.add_argument("-t", "--tty", action="store_true", help="allocate a terminal")
    ex.add_argument("name")
    ex.add_argument("command", nargs=argparse.REMAINDER)
    _devvm_options(ex)
    ex.set_defaults(func=_cmd_exec)
    for verb, fn, helptext in (("stop", _cmd_stop, "stop dev-VM containers (kept for start)"),
                               ("start", _cmd_start, "start stopped dev-VM containers again"),
                               ("rm", _cmd_rm, "remove dev-VM containers (their images stay)")):
        v = sub.add_parser(verb, help=helptext)
        v.add_argument("names", nargs="*" if verb == "start" else "+", metavar="NAME")
        if verb == "stop":
            v.add_argument("-t", "--time", type=float, default=10, help="seconds before SIGKILL (default 10)")
        if verb == "start":
            v.add_argument("--all", action="store_true", help="every VM made with --restart always (at boot)")
            v.add_argument("--watch", action="store_true",
                           help="with --all: then stay, starting them again whenever they exit")
        if verb == "rm":
            v.add_argument("-f", "--force", action="store_true", help="stop it first if running")
        _devvm_options(v)
        v.set_defaults(func=fn)
    sh = sub.add_parser("ssh", help="log into a dev VM as root with ssh")
    sh.add_argument("-t", "--tty", action="store_true", help="force a terminal (ssh -t)")
    sh.add_argument("name")
    sh.add_argument("command", nargs=argparse.REMAINDER, help="run this instead of a login shell")
    _devvm_options(sh)
    sh.set_defaults(func=_cmd_ssh)
    lg = sub.add_parser("logs", help="a dev VM's journal (systemd) or console output")
    lg.add_argument("-f", "--follow", action="store_true", help="keep printing until the VM stops")
    lg.add_argument("name")
    _devvm_options(lg)
    lg.set_defaults(func=_cmd_logs)
    cp = sub.add_parser("cp", help="copy files into or out of a running dev VM (NAME:PATH on one side)")
    cp.add_argument("src", metavar="SRC")
    cp.add_argument("dst", metavar="DST")
    _devvm_options(cp)
    cp.set_defaults(func=_cmd_cp)
    sn = sub.add_parser("snapshot", help="save a dev VM's disk state under a name (or list them)")
    sn.add_argument("-l", "--list", action="store_true", help="list the VM's snapshots")
    sn.add_argument("name")
    sn.add_argument("snapshot", nargs="?", metavar="SNAPSHOT")
    _devvm_options(sn)
    sn.set_defaults(func=_cmd_snapshot)
    rs = sub.add_parser("restore", help="bring a stopped dev VM's disk back to a snapshot")
    rs.add_argument("name")
    rs.add_argument("snapshot", metavar="SNAPSHOT")
    _devvm_options(rs)
    rs.set_defaults(func=_cmd_restore)
    cl = sub.add_parser("clone", help="make a new dev VM from a copy of another's disk (stopped; no ports)")
    cl.add_argument("name")
    cl.add_argument("new", metavar="NEW")
    _devvm_options(cl)
    cl.set_defaults(func=_cmd_clone)
    ims = sub.add_parser("images", help="images in the dev-VM store, and which VMs use them")
    ims.add_argument("--json", action="store_true")
    ims.add_argument("--size", action="store_true", help="with --json: measure the unpacked size too")
    _devvm_options(ims)
    ims.set_defaults(func=_cmd_images)
    rmi = sub.add_parser("rmi", help="remove images from the dev-VM store (refused while a VM uses one)")
    rmi.add_argument("images", nargs="+", metavar="IMAGE", help="id, name or source path")
    _devvm_options(rmi)
    rmi.set_defaults(func=_cmd_rmi)

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
    except Exception as e:  # expected errors become one line, bugs keep tracebacks
        from sysbox.errors import describe

        msg = describe(e)
        if msg is None:
            raise
        print(f"sysbox: {msg}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
