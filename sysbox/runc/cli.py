"""runc-compatible command-line parsing, by table.

containerd-shim-runc-v2, dockerd and podman drive the runtime with runc's exact flags
(urfave/cli style: `--flag value`, `--flag=value`, single-dash long names, flags stop at the
first positional argument).  argparse differs on each of those points and costs import time
on every `state`/`kill` call, so this module is a small table-driven parser with no imports.
"""

from __future__ import annotations

# name -> takes a value?  Aliases map to their canonical name.
GLOBAL_FLAGS: dict[str, bool] = {
    "debug": False, "log": True, "log-format": True, "root": True, "criu": True,
    "systemd-cgroup": False, "rootless": True, "help": False, "version": False,
    # sysbox-only (removed before calling the lower runtime)
    "lower-runtime": True, "no-sysbox-mgr": False, "mgr-socket": True, "shift-mode": True,
    "sysbox-state": True, "fs-socket": True, "no-sysbox-fs": False,
}
GLOBAL_ALIASES = {"h": "help", "v": "version"}
SYSBOX_GLOBALS = frozenset({"lower-runtime", "no-sysbox-mgr", "mgr-socket", "shift-mode", "sysbox-state",
                            "fs-socket", "no-sysbox-fs"})

_CREATE = {"bundle": True, "console-socket": True, "pid-file": True, "no-pivot": False,
           "no-new-keyring": False, "preserve-fds": True}
_UPDATE_VALUES = ("resources", "blkio-weight", "cpu-period", "cpu-quota", "cpu-share",
                  "cpu-rt-period", "cpu-rt-runtime", "cpuset-cpus", "cpuset-mems", "kernel-memory",
                  "kernel-memory-tcp", "memory", "memory-reservation", "memory-swap", "pids-limit",
                  "l3-cache-schema", "mem-bw-schema")

COMMANDS: dict[str, dict[str, bool]] = {
    "create": dict(_CREATE),
    "run": {**_CREATE, "detach": False, "keep": False},
    "start": {},
    "state": {},
    "kill": {"all": False},
    "delete": {"force": False},
    "exec": {"console-socket": True, "cwd": True, "env": True, "tty": False, "user": True,
             "additional-gids": True, "process": True, "detach": False, "pid-file": True,
             "process-label": True, "apparmor": True, "no-new-privs": False, "cap": True,
             "preserve-fds": True, "cgroup": True, "ignore-paused": False, "no-subreaper": False},
    "ps": {"format": True},
    "pause": {},
    "resume": {},
    "update": {name: True for name in _UPDATE_VALUES},
    "events": {"interval": True, "stats": False},
    "features": {},
    "list": {"format": True, "quiet": False},
    "spec": {"bundle": True, "rootless": False},
}
for _flags in COMMANDS.values():
    _flags["help"] = False
HELP_ALIASES = {"h": "help"}  # urfave/cli gives every subcommand -h
COMMAND_ALIASES: dict[str, dict[str, str]] = {
    "create": {"b": "bundle"}, "run": {"b": "bundle", "d": "detach"}, "kill": {"a": "all"},
    "delete": {"f": "force"}, "ps": {"f": "format"}, "list": {"f": "format", "q": "quiet"},
    "spec": {"b": "bundle"}, "update": {"r": "resources"},
    "exec": {"e": "env", "t": "tty", "u": "user", "g": "additional-gids", "p": "process",
             "d": "detach", "c": "cap"},
}
# Commands that take a container id as their first positional argument.
NEEDS_ID = frozenset({"create", "run", "start", "state", "kill", "delete", "exec", "ps",
                      "pause", "resume", "update", "events"})
UNSUPPORTED = {"checkpoint": "checkpoint/restore is not supported by system containers",
               "restore": "checkpoint/restore is not supported by system containers"}


class UsageError(Exception):
    """A command line runc would also reject; the message is one line."""


class Invocation:
    """A parsed command line; `lower_argv()` rebuilds what the lower runtime must see."""

    def __init__(self) -> None:
        self.globals: dict[str, object] = {}
        self.command: str | None = None
        self.flags: dict[str, object] = {}
        self.args: list[str] = []
        self._raw_globals: list[str] = []
        self._raw_command: list[str] = []

    @property
    def container_id(self) -> str | None:
        return self.args[0] if self.command in NEEDS_ID and self.args else None

    def replace_flag(self, name: str, value: str) -> None:
        """Change a value flag in what is passed down (e.g. exec --process FILE)."""
        raw, out, i = self._raw_command, [], 0
        while i < len(raw) - len(self.args):
            token = raw[i]
            key = _split(token)[0] if token.startswith("-") else None
            key = COMMAND_ALIASES.get(str(self.command), {}).get(key, key) if key else None
            if key == name:
                out.append(f"--{name}={value}")
                i += 1 if "=" in token else 2
                continue
            out.append(token)
            i += 1
        self._raw_command = out + raw[len(raw) - len(self.args):]
        self.flags[name] = value

    def set_args(self, args: list[str]) -> None:
        """Replace the positional arguments passed down (the flags before them are kept)."""
        n = len(self.args)
        self._raw_command = self._raw_command[: len(self._raw_command) - n] + list(args)
        self.args = list(args)

    def lower_globals(self) -> list[str]:
        """The global flags runc must see (ours removed)."""
        return list(self._raw_globals)

    def lower_argv(self, command_args: list[str] | None = None) -> list[str]:
        """runc's argv (without argv[0]): our own globals dropped, everything else verbatim."""
        argv = list(self._raw_globals)
        if self.command is not None:
            argv.append(self.command)
            argv.extend(self._raw_command if command_args is None else command_args)
        return argv


def _split(token: str) -> tuple[str, str | None]:
    body = token[2:] if token.startswith("--") else token[1:]
    name, eq, value = body.partition("=")
    return name, (value if eq else None)


def _parse_flags(tokens: list[str], i: int, table: dict[str, bool], aliases: dict[str, str],
                 out: dict[str, object], raw: list[str], where: str,
                 keep: frozenset[str] = frozenset()) -> int:
    """Consume flags from tokens[i:]; return the index of the first positional token."""
    while i < len(tokens):
        token = tokens[i]
        if token == "--":
            return i + 1
        if not token.startswith("-") or token == "-":
            return i
        name, value = _split(token)
        name = aliases.get(name, name)
        if name not in table:
            raise UsageError(f"{where}flag provided but not defined: {token.split('=')[0]}")
        start = i
        if table[name]:
            if value is None:
                if i + 1 >= len(tokens):
                    raise UsageError(f"{where}flag needs an argument: {token}")
                i += 1
                value = tokens[i]
            if name in ("env", "cap", "additional-gids"):
                values = out.setdefault(name, [])
                assert isinstance(values, list)
                values.append(value)
            else:
                out[name] = value
        else:
            if value is not None and value not in ("true", "false"):
                raise UsageError(f"{where}invalid boolean value {value!r} for flag -{name}")
            out[name] = value != "false"
        i += 1
        if name not in keep:
            raw.extend(tokens[start:i])
    return i


def parse(argv: list[str]) -> Invocation:
    """Parse runc's command line (argv without the program name)."""
    inv = Invocation()
    i = _parse_flags(argv, 0, GLOBAL_FLAGS, GLOBAL_ALIASES, inv.globals, inv._raw_globals, "",
                     keep=SYSBOX_GLOBALS)
    if i >= len(argv):
        return inv
    command = argv[i]
    if command in UNSUPPORTED:
        if any(t in ("-h", "--help", "-help") for t in argv[i + 1:]):
            inv.command, inv.flags["help"] = command, True  # runc's own help text, exit 0
            inv._raw_command = argv[i + 1:]
            return inv
        raise UsageError(f"{command}: {UNSUPPORTED[command]}")
    if command not in COMMANDS:
        raise UsageError(f"No help topic for '{command}'")
    inv.command = command
    j = _parse_flags(argv, i + 1, COMMANDS[command], {**HELP_ALIASES, **COMMAND_ALIASES.get(command, {})},
                     inv.flags, inv._raw_command, f"{command}: ")
    inv.args = argv[j:]
    inv._raw_command.extend(inv.args)
    if command in NEEDS_ID and not inv.flags.get("help") and not inv.args:
        raise UsageError(f"{command}: container id cannot be empty")
    return inv
